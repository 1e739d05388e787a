// The addon's one toolkit for the JavaScript boundary: argument checks that name the argument,
// typed-array views, and Promise-returning work off the event loop. Every binding uses it; none
// keeps private copies.
//
// How to declare a binding:
//   1. A function of typed arrays and dims that works in place (a kernel): one row of a table, see
//      kernel_table.h:
//        {"rmsnormForward", {NormDims(), F32("x", "tokens·channels"), ...},
//         [](const KernelCall& c) { cpu::RmsNormForward(c.F32("out"), ...); return KernelResult(); }}
//   2. Anything else: a function that checks its arguments here on the main thread (a TypeError or
//      RangeError naming the argument), then hands the work to RunAsync and returns its Promise:
//        Napi::Value Step(const Napi::CallbackInfo& info) {
//          const double lr = NumberArg(info, 0, "lr");
//          return RunAsync<StepStats>(info.Env(), [=](const ReportProgress&) { return t->Step(lr); },
//                                     StepToJs);
//        }
//      Values that need the work's thread to check (lengths against dims, token ids) throw
//      std::invalid_argument there; the Promise rejects with the message.
//   3. Register it in the area's Register* function: production areas in registry.h, bindings that
//      exist only for tests and benchmarks (kernels, references, probes) in testing/testing.h.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/arena.h"

namespace longctx::addon {

// ---- errors ------------------------------------------------------------------------------------

// "argument 2 (weight)": how messages name a positional argument.
std::string ArgName(size_t index, const char* name);

[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);

// The JavaScript Error for a native exception: an OutOfMemoryError keeps its numbers and the code
// 'ERR_LONGCTX_OUT_OF_MEMORY'; a Napi::Error stays itself; anything else carries its message.
Napi::Error ErrorToJs(Napi::Env env, std::exception_ptr error);
Napi::Error OutOfMemoryToJs(Napi::Env env, const OutOfMemoryError& e);

// Runs `f` on the main thread, turning a C++ exception into a JavaScript Error (node-addon-api
// only converts Napi::Error by itself).
template <typename F>
auto CallNative(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw ErrorToJs(env, std::current_exception());
  }
}

// ---- positional arguments (a TypeError naming the argument, or a RangeError for a bad value) ------

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1: a double counts exactly to here

double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name);
bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* name);
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t index, const char* name);
std::optional<Napi::Function> OptionalFunctionArg(const Napi::CallbackInfo& info, size_t index,
                                                  const char* name);
// An integer in [min, max] (RangeError "must be an integer >= min" when max is kMaxSafeInteger).
int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t min,
                   double max = kMaxSafeInteger);
// A non-negative integer number of bytes (TypeError).
size_t ByteCount(const Napi::CallbackInfo& info, size_t index, const char* name);
// True when the argument is absent, undefined or null.
bool IsAbsent(const Napi::CallbackInfo& info, size_t index);

// ---- fields of an options object ("dims.tokens must be a number") ---------------------------------

// `fallback` is used when the field is undefined; without one the field is required.
double NumberField(Napi::Object o, const std::string& object, const char* field,
                   std::optional<double> fallback = std::nullopt);
// A number that is a whole int32 (TypeError "must be an integer, got 2.5").
int IntField(Napi::Object o, const std::string& object, const char* field,
             std::optional<int> fallback = std::nullopt);
// An integer in [min, max] (RangeError).
int64_t IntegerField(Napi::Object o, const std::string& object, const char* field, int64_t min, int64_t max,
                     std::optional<int64_t> fallback = std::nullopt);
bool BoolField(Napi::Object o, const std::string& object, const char* field,
               std::optional<bool> fallback = std::nullopt);
std::string StringField(Napi::Object o, const std::string& object, const char* field,
                        std::optional<std::string> fallback = std::nullopt);
Napi::Object ObjectField(Napi::Object o, const std::string& object, const char* field);

// ---- typed arrays --------------------------------------------------------------------------------

// Keeps JavaScript objects (typed arrays, a model) alive while native work uses them; released on
// the main thread with the worker that holds them.
struct Pins {
  std::vector<Napi::ObjectReference> refs;
  void Add(Napi::Object obj) { refs.push_back(Napi::Persistent(obj)); }
};

template <typename T>
constexpr napi_typedarray_type TypedArrayKind() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int32_t>);
  if constexpr (std::is_same_v<T, float>) return napi_float32_array;
  if constexpr (std::is_same_v<T, double>) return napi_float64_array;
  if constexpr (std::is_same_v<T, int32_t>) return napi_int32_array;
}

// "a Float32Array", "a Float64Array", "an Int32Array"
const char* TypedArrayName(napi_typedarray_type kind);

inline bool IsTypedArrayOf(const Napi::Value& value, napi_typedarray_type kind) {
  return value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == kind;
}

// A typed array argument's memory, named for messages; data == nullptr for an absent optional one.
template <typename T>
struct ArrayArg {
  const char* name = "";
  T* data = nullptr;
  size_t length = 0;
};

// Argument `index` as a T typed array, used in place and pinned in `pins`.
template <typename T>
ArrayArg<T> TypedArg(const Napi::CallbackInfo& info, size_t index, const char* name, Pins& pins) {
  if (info.Length() <= index || !IsTypedArrayOf(info[index], TypedArrayKind<T>()))
    ThrowTypeError(info.Env(), ArgName(index, name) + " must be " + TypedArrayName(TypedArrayKind<T>()));
  auto array = info[index].As<Napi::TypedArrayOf<T>>();
  pins.Add(array);
  return {name, array.Data(), array.ElementLength()};
}

// As TypedArg, but null or undefined gives data == nullptr (an output not wanted).
template <typename T>
ArrayArg<T> OptionalTypedArg(const Napi::CallbackInfo& info, size_t index, const char* name, Pins& pins) {
  if (IsAbsent(info, index)) return {name, nullptr, 0};
  if (!IsTypedArrayOf(info[index], TypedArrayKind<T>()))
    ThrowTypeError(info.Env(),
                   ArgName(index, name) + " must be " + TypedArrayName(TypedArrayKind<T>()) + " or null");
  return TypedArg<T>(info, index, name, pins);
}

// A copy of a T typed array argument, so JavaScript may reuse its array at once.
template <typename T>
std::vector<T> CopyArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Pins unused;
  const ArrayArg<T> a = TypedArg<T>(info, index, name, unused);
  return std::vector<T>(a.data, a.data + a.length);
}

// Argument `index` as a Float32Array handle (its memory stays owned by JavaScript).
Napi::Float32Array Float32Arg(const Napi::CallbackInfo& info, size_t index, const char* name);

// True when argument `index` is a Float64Array: picks the precision of a naive reference kernel.
inline bool IsFloat64Arg(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() > index && IsTypedArrayOf(info[index], napi_float64_array);
}

// Throws std::invalid_argument (on the work's thread) unless `a` holds exactly `expected` elements:
// "weight has 3 elements, expected channels = 96".
template <typename T>
void ExpectLength(const ArrayArg<T>& a, size_t expected, const char* formula) {
  if (a.data != nullptr && a.length != expected)
    throw std::invalid_argument(std::string(a.name) + " has " + std::to_string(a.length) +
                                " elements, expected " + formula + " = " + std::to_string(expected));
}

Napi::Float32Array ToFloat32Array(Napi::Env env, const float* data, size_t count);
Napi::Int32Array ToInt32Array(Napi::Env env, const int32_t* data, size_t count);

// ---- Promise-returning work ------------------------------------------------------------------------

// A named set of numbers: what a long operation reports while it runs.
using Progress = std::vector<std::pair<std::string, double>>;
using ReportProgress = std::function<void(Progress)>;

// Converts a finished operation's result into a JavaScript value, on the main thread.
template <typename Result>
using ToJs = std::function<Napi::Value(Napi::Env, Result&)>;

struct AsyncOptions {
  // Receives Progress objects through a thread-safe function; the work never blocks on it.
  std::optional<Napi::Function> on_progress;
  // Runs on the main thread when the operation is over (after its Promise settled).
  std::function<void()> on_done;
  // Run on a thread of its own instead of the libuv pool: for work that waits on other processes
  // (a collective), which would starve the pool's 4 threads of the host's file and crypto work.
  bool own_thread = false;
};

namespace detail {

// One operation: its work, its Promise and how the outcome becomes JavaScript. Run() on the work's
// thread; Settle() and the destructor on the main thread.
class PromiseJob {
 public:
  PromiseJob(Napi::Env env, std::function<void(const ReportProgress&)> work,
             std::function<Napi::Value(Napi::Env)> result_to_js, AsyncOptions options);
  ~PromiseJob();
  PromiseJob(const PromiseJob&) = delete;
  PromiseJob& operator=(const PromiseJob&) = delete;

  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Run();
  void Settle(Napi::Env env);
  // Rejects at once, on the main thread (the work could not start).
  void Fail(Napi::Env env, std::exception_ptr error) {
    error_ = error;
    Settle(env);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void(const ReportProgress&)> work_;
  std::function<Napi::Value(Napi::Env)> result_to_js_;
  std::function<void()> on_done_;
  Napi::ThreadSafeFunction progress_;
  std::exception_ptr error_;
};

// Queues `job` on the libuv pool or starts its thread; returns its Promise. Takes ownership.
Napi::Promise Start(Napi::Env env, PromiseJob* job, bool own_thread);

}  // namespace detail

// Runs `work` off the event loop and returns a Promise of `to_js(result)`. A C++ exception rejects
// the Promise with ErrorToJs (its message; an out-of-memory error keeps its fields).
template <typename Result>
Napi::Promise RunAsync(Napi::Env env, std::function<Result(const ReportProgress&)> work, ToJs<Result> to_js,
                       AsyncOptions options = {}) {
  const bool own_thread = options.own_thread;
  auto result = std::make_shared<std::optional<Result>>();
  auto* job = new detail::PromiseJob(
      env, [result, work = std::move(work)](const ReportProgress& report) { result->emplace(work(report)); },
      [result, to_js = std::move(to_js)](Napi::Env e) { return to_js(e, **result); }, std::move(options));
  return detail::Start(env, job, own_thread);
}

// Runs `work` on the pool; the Promise resolves to undefined. The pins live as long as the work.
Napi::Promise RunInPlace(Napi::Env env, std::shared_ptr<Pins> pins, std::function<void()> work);

// As RunInPlace, with a result converted on the main thread.
template <typename Result>
Napi::Promise RunWithResult(Napi::Env env, std::shared_ptr<Pins> pins, std::function<Result()> work,
                            ToJs<Result> to_js) {
  return RunAsync<Result>(
      env, [work = std::move(work)](const ReportProgress&) { return work(); },
      [pins, to_js = std::move(to_js)](Napi::Env e, Result& r) { return to_js(e, r); });
}

// A Promise already rejected with `message` (an operation refused before it started).
Napi::Promise Rejected(Napi::Env env, const std::string& message);

}  // namespace longctx::addon
