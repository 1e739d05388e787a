// Runs long native operations off the JavaScript event loop.
//
// Every operation that can take more than a few microseconds (a collective, a kernel launch, a
// training step) goes through RunAsync: the work runs on a libuv pool thread, the caller gets a
// Promise, and any C++ exception becomes a rejected Promise whose Error carries e.what().
// Progress, when asked for, reaches JavaScript through a thread-safe function and never blocks
// the worker thread.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace longctx::addon {

// A named set of numbers: what a long operation reports while it runs.
using Progress = std::vector<std::pair<std::string, double>>;
using ReportProgress = std::function<void(Progress)>;

// Converts a finished operation's result into a JavaScript value, on the main thread.
template <typename Result>
using ToJs = std::function<Napi::Value(Napi::Env, Result&)>;

template <typename Result>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<Result(const ReportProgress&)> work, ToJs<Result> to_js,
                std::optional<Napi::Function> on_progress)
      : Napi::AsyncWorker(env, "longctx"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        to_js_(std::move(to_js)) {
    if (on_progress) {
      progress_ = Napi::ThreadSafeFunction::New(env, *on_progress, "longctx-progress", 0, 1);
    }
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
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
      result_.emplace(work_(report));
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native exception");
    }
  }

  void OnOK() override {
    Release();
    deferred_.Resolve(to_js_(Env(), *result_));
  }

  void OnError(const Napi::Error& error) override {
    Release();
    deferred_.Reject(error.Value());
  }

 private:
  void Release() {
    if (progress_) progress_.Release();
  }

  Napi::Promise::Deferred deferred_;
  std::function<Result(const ReportProgress&)> work_;
  ToJs<Result> to_js_;
  Napi::ThreadSafeFunction progress_;
  std::optional<Result> result_;
};

// Queues `work` and returns its Promise. `on_progress` (optional) receives Progress objects.
template <typename Result>
Napi::Promise RunAsync(Napi::Env env, std::function<Result(const ReportProgress&)> work, ToJs<Result> to_js,
                       std::optional<Napi::Function> on_progress = std::nullopt) {
  auto* worker = new PromiseWorker<Result>(env, std::move(work), std::move(to_js), std::move(on_progress));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK/OnError
  return promise;
}

// Argument helpers that throw a JavaScript TypeError naming the argument.
double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name);
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t index, const char* name);
std::optional<Napi::Function> OptionalFunctionArg(const Napi::CallbackInfo& info, size_t index,
                                                  const char* name);
// The data of a Float32Array argument (its memory stays owned by JavaScript).
Napi::Float32Array Float32Arg(const Napi::CallbackInfo& info, size_t index, const char* name);

}  // namespace longctx::addon
