#include "addon/napi_toolkit.h"

#include <cstring>
#include <system_error>
#include <thread>

namespace longctx::addon {

// ---- errors ------------------------------------------------------------------------------------

std::string ArgName(size_t index, const char* name) {
  return "argument " + std::to_string(index) + " (" + name + ")";
}

void ThrowTypeError(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }
void ThrowRangeError(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

Napi::Error OutOfMemoryToJs(Napi::Env env, const OutOfMemoryError& e) {
  Napi::Error error = Napi::Error::New(env, e.what());
  error.Set("code", "ERR_LONGCTX_OUT_OF_MEMORY");
  error.Set("requested", static_cast<double>(e.requested));
  error.Set("inUse", static_cast<double>(e.in_use));
  error.Set("budget", static_cast<double>(e.budget));
  return error;
}

Napi::Error ErrorToJs(Napi::Env env, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Napi::Error& e) {
    return e;
  } catch (const OutOfMemoryError& e) {
    return OutOfMemoryToJs(env, e);
  } catch (const std::exception& e) {
    return Napi::Error::New(env, e.what());
  } catch (...) {
    return Napi::Error::New(env, "unknown native exception");
  }
}

// ---- positional arguments ------------------------------------------------------------------------

namespace {
[[noreturn]] void ThrowArgType(const Napi::CallbackInfo& info, size_t index, const char* name,
                               const char* want) {
  ThrowTypeError(info.Env(), ArgName(index, name) + " must be " + want);
}

std::string IntegerRange(double min, double max) {
  return max >= kMaxSafeInteger ? ">= " + std::to_string(static_cast<int64_t>(min))
                                : "in [" + std::to_string(static_cast<int64_t>(min)) + ", " +
                                      std::to_string(static_cast<int64_t>(max)) + "]";
}

bool IsIntegerIn(double x, double min, double max) {
  return std::isfinite(x) && x == std::floor(x) && x >= min && x <= max;
}
}  // namespace

bool IsAbsent(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() <= index || info[index].IsUndefined() || info[index].IsNull();
}

double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsNumber()) ThrowArgType(info, index, name, "a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsBoolean()) ThrowArgType(info, index, name, "a boolean");
  return info[index].As<Napi::Boolean>().Value();
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsString()) ThrowArgType(info, index, name, "a string");
  return info[index].As<Napi::String>().Utf8Value();
}

Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsObject()) ThrowArgType(info, index, name, "an object");
  return info[index].As<Napi::Object>();
}

std::optional<Napi::Function> OptionalFunctionArg(const Napi::CallbackInfo& info, size_t index,
                                                  const char* name) {
  if (IsAbsent(info, index)) return std::nullopt;
  if (!info[index].IsFunction()) ThrowArgType(info, index, name, "a function");
  return info[index].As<Napi::Function>();
}

int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t min, double max) {
  const double x = NumberArg(info, index, name);
  if (!IsIntegerIn(x, static_cast<double>(min), max))
    ThrowRangeError(info.Env(), ArgName(index, name) + " must be an integer " +
                                    IntegerRange(static_cast<double>(min), max) + ", got " +
                                    info[index].ToString().Utf8Value());
  return static_cast<int64_t>(x);
}

size_t ByteCount(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double x = NumberArg(info, index, name);
  if (!IsIntegerIn(x, 0, kMaxSafeInteger + 1))
    ThrowTypeError(
        info.Env(),
        ArgName(index, name) + " must be a non-negative integer number of bytes, got " + std::to_string(x));
  return static_cast<size_t>(x);
}

Napi::Float32Array Float32Arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !IsTypedArrayOf(info[index], napi_float32_array))
    ThrowArgType(info, index, name, "a Float32Array");
  return info[index].As<Napi::Float32Array>();
}

// ---- fields --------------------------------------------------------------------------------------

namespace {
[[noreturn]] void ThrowFieldType(Napi::Object o, const std::string& object, const char* field,
                                 const char* want) {
  ThrowTypeError(o.Env(), object + "." + field + " must be " + want);
}
}  // namespace

double NumberField(Napi::Object o, const std::string& object, const char* field,
                   std::optional<double> fallback) {
  Napi::Value value = o.Get(field);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsNumber()) ThrowFieldType(o, object, field, "a number");
  return value.As<Napi::Number>().DoubleValue();
}

int IntField(Napi::Object o, const std::string& object, const char* field, std::optional<int> fallback) {
  Napi::Value value = o.Get(field);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsNumber()) ThrowFieldType(o, object, field, "a number");
  const double x = value.As<Napi::Number>().DoubleValue();
  if (!(std::abs(x) < 2147483648.0) || x != std::trunc(x))
    ThrowTypeError(o.Env(), object + "." + field + " must be an integer, got " + std::to_string(x));
  return static_cast<int>(x);
}

int64_t IntegerField(Napi::Object o, const std::string& object, const char* field, int64_t min, int64_t max,
                     std::optional<int64_t> fallback) {
  Napi::Value value = o.Get(field);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsNumber()) ThrowFieldType(o, object, field, "a number");
  const double x = value.As<Napi::Number>().DoubleValue();
  if (!IsIntegerIn(x, static_cast<double>(min), static_cast<double>(max)))
    ThrowRangeError(o.Env(), object + "." + field + " must be an integer " +
                                 IntegerRange(static_cast<double>(min), static_cast<double>(max)) + ", got " +
                                 value.ToString().Utf8Value());
  return static_cast<int64_t>(x);
}

bool BoolField(Napi::Object o, const std::string& object, const char* field, std::optional<bool> fallback) {
  Napi::Value value = o.Get(field);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsBoolean()) ThrowFieldType(o, object, field, "a boolean");
  return value.As<Napi::Boolean>().Value();
}

std::string StringField(Napi::Object o, const std::string& object, const char* field,
                        std::optional<std::string> fallback) {
  Napi::Value value = o.Get(field);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsString()) ThrowFieldType(o, object, field, "a string");
  return value.As<Napi::String>().Utf8Value();
}

Napi::Object ObjectField(Napi::Object o, const std::string& object, const char* field) {
  Napi::Value value = o.Get(field);
  if (!value.IsObject()) ThrowFieldType(o, object, field, "an object");
  return value.As<Napi::Object>();
}

// ---- typed arrays --------------------------------------------------------------------------------

const char* TypedArrayName(napi_typedarray_type kind) {
  switch (kind) {
    case napi_float32_array:
      return "a Float32Array";
    case napi_float64_array:
      return "a Float64Array";
    case napi_int32_array:
      return "an Int32Array";
    default:
      return "a typed array";
  }
}

Napi::Float32Array ToFloat32Array(Napi::Env env, const float* data, size_t count) {
  Napi::Float32Array out = Napi::Float32Array::New(env, count);
  if (count > 0) std::memcpy(out.Data(), data, count * sizeof(float));
  return out;
}

Napi::Int32Array ToInt32Array(Napi::Env env, const int32_t* data, size_t count) {
  Napi::Int32Array out = Napi::Int32Array::New(env, count);
  if (count > 0) std::memcpy(out.Data(), data, count * sizeof(int32_t));
  return out;
}

// ---- Promise-returning work ------------------------------------------------------------------------

namespace detail {

PromiseJob::PromiseJob(Napi::Env env, std::function<void(const ReportProgress&)> work,
                       std::function<Napi::Value(Napi::Env)> result_to_js, AsyncOptions options)
    : deferred_(Napi::Promise::Deferred::New(env)),
      work_(std::move(work)),
      result_to_js_(std::move(result_to_js)),
      on_done_(std::move(options.on_done)) {
  if (options.on_progress)
    progress_ = Napi::ThreadSafeFunction::New(env, *options.on_progress, "longctx-progress", 0, 1);
}

PromiseJob::~PromiseJob() {
  if (on_done_) on_done_();
}

void PromiseJob::Run() {
  ReportProgress report = [this](Progress p) {
    if (!progress_) return;
    auto* boxed = new Progress(std::move(p));
    auto status = progress_.NonBlockingCall(boxed, [](Napi::Env env, Napi::Function fn, Progress* data) {
      std::unique_ptr<Progress> owned(data);
      if (env == nullptr || fn.IsEmpty()) return;
      Napi::Object obj = Napi::Object::New(env);
      for (auto& [name, value] : *owned) obj.Set(name, Napi::Number::New(env, value));
      fn.Call({obj});
    });
    if (status != napi_ok) delete boxed;
  };
  try {
    work_(report);
  } catch (...) {
    error_ = std::current_exception();
  }
}

void PromiseJob::Settle(Napi::Env env) {
  Napi::HandleScope scope(env);
  if (progress_) progress_.Release();
  if (error_) {
    deferred_.Reject(ErrorToJs(env, error_).Value());
    return;
  }
  try {
    deferred_.Resolve(result_to_js_(env));
  } catch (...) {
    deferred_.Reject(ErrorToJs(env, std::current_exception()).Value());
  }
}

namespace {

// On the libuv pool. Execute() never fails by itself: the job keeps the outcome and settles it.
class PoolWorker : public Napi::AsyncWorker {
 public:
  PoolWorker(Napi::Env env, std::unique_ptr<PromiseJob> job)
      : Napi::AsyncWorker(env, "longctx"), job_(std::move(job)) {}

 protected:
  void Execute() override { job_->Run(); }
  void OnOK() override { job_->Settle(Env()); }

 private:
  std::unique_ptr<PromiseJob> job_;
};

// On a thread of its own; a thread-safe function brings the outcome to the main thread (and keeps
// the event loop alive meanwhile). The job is destroyed there, after the thread was joined.
struct ThreadRun {
  std::unique_ptr<PromiseJob> job;
  std::thread thread;
};

void SettleThreadRun(Napi::Env env, Napi::Function, ThreadRun*, ThreadRun* run) {
  if (env != nullptr) run->job->Settle(env);  // null: the environment is shutting down
}

using ThreadTsfn = Napi::TypedThreadSafeFunction<ThreadRun, ThreadRun, &SettleThreadRun>;

Napi::Promise StartThread(Napi::Env env, std::unique_ptr<PromiseJob> job) {
  Napi::Promise promise = job->Promise();
  auto* run = new ThreadRun{std::move(job), {}};
  auto tsfn = ThreadTsfn::New(env, "longctx-thread", 0, 1, run, [](Napi::Env, void*, ThreadRun* done) {
    if (done->thread.joinable()) done->thread.join();
    delete done;
  });
  try {
    run->thread = std::thread([run, tsfn] {
      run->job->Run();
      tsfn.BlockingCall(run);
      tsfn.Release();
    });
  } catch (const std::system_error& e) {
    run->job->Fail(
        env, std::make_exception_ptr(std::runtime_error(std::string("cannot start a thread: ") + e.what())));
    tsfn.Release();  // its finalizer deletes the job
  }
  return promise;
}

}  // namespace

Napi::Promise Start(Napi::Env env, PromiseJob* job, bool own_thread) {
  std::unique_ptr<PromiseJob> owned(job);
  if (own_thread) return StartThread(env, std::move(owned));
  Napi::Promise promise = owned->Promise();
  (new PoolWorker(env, std::move(owned)))->Queue();  // deletes itself after OnOK
  return promise;
}

}  // namespace detail

Napi::Promise RunInPlace(Napi::Env env, std::shared_ptr<Pins> pins, std::function<void()> work) {
  struct Done {};
  return RunAsync<Done>(
      env,
      [work = std::move(work)](const ReportProgress&) {
        work();
        return Done{};
      },
      [pins](Napi::Env e, Done&) -> Napi::Value { return e.Undefined(); });
}

Napi::Promise Rejected(Napi::Env env, const std::string& message) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(Napi::Error::New(env, message).Value());
  return deferred.Promise();
}

}  // namespace longctx::addon
