// Argument helpers shared by the kernel, arena and model bindings: typed arrays the native code
// reads or writes in place (pinned while a pool thread uses them), integer fields of option
// objects, and length checks that name the array. Type problems throw a TypeError at once;
// length and value problems are std::invalid_argument thrown inside the work, so they reject the
// Promise with the message.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "addon/promise_worker.h"

namespace longctx::addon {

// Keeps JavaScript objects (typed arrays, the model) alive while native work uses them; released
// on the main thread when the worker holding it is destroyed.
struct Pins {
  std::vector<Napi::ObjectReference> refs;
  void Add(Napi::Object obj) { refs.push_back(Napi::Persistent(obj)); }
};

// A typed array's memory, with its argument name for messages.
template <typename T>
struct ArrayArg {
  const char* name = "";
  T* data = nullptr;
  size_t length = 0;
};

template <typename T>
constexpr napi_typedarray_type TypedArrayKind() {
  if constexpr (std::is_same_v<T, float>) return napi_float32_array;
  if constexpr (std::is_same_v<T, double>) return napi_float64_array;
  if constexpr (std::is_same_v<T, int32_t>) return napi_int32_array;
}

template <typename T>
constexpr const char* TypedArrayName() {
  if constexpr (std::is_same_v<T, float>) return "a Float32Array";
  if constexpr (std::is_same_v<T, double>) return "a Float64Array";
  if constexpr (std::is_same_v<T, int32_t>) return "an Int32Array";
}

[[noreturn]] inline void ThrowTypeError(const Napi::CallbackInfo& info, const std::string& message) {
  throw Napi::TypeError::New(info.Env(), message);
}

inline bool IsTypedArrayOf(const Napi::Value& value, napi_typedarray_type kind) {
  return value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == kind;
}

// Argument `index` as a T typed array, pinned in `pins`.
template <typename T>
ArrayArg<T> TypedArg(const Napi::CallbackInfo& info, size_t index, const char* name, Pins& pins) {
  if (info.Length() <= index || !IsTypedArrayOf(info[index], TypedArrayKind<T>())) {
    ThrowTypeError(info,
                   "argument " + std::to_string(index) + " (" + name + ") must be " + TypedArrayName<T>());
  }
  auto array = info[index].As<Napi::TypedArrayOf<T>>();
  pins.Add(array);
  return {name, array.Data(), array.ElementLength()};
}

// As TypedArg, but null or undefined gives an ArrayArg with data == nullptr (an output not wanted).
template <typename T>
ArrayArg<T> OptionalTypedArg(const Napi::CallbackInfo& info, size_t index, const char* name, Pins& pins) {
  if (info.Length() <= index || info[index].IsNull() || info[index].IsUndefined()) return {name, nullptr, 0};
  if (!IsTypedArrayOf(info[index], TypedArrayKind<T>())) {
    ThrowTypeError(info, "argument " + std::to_string(index) + " (" + name + ") must be " +
                             TypedArrayName<T>() + " or null");
  }
  return TypedArg<T>(info, index, name, pins);
}

// True when argument `index` is a Float64Array: picks the precision of a naive reference kernel.
inline bool IsFloat64Arg(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() > index && IsTypedArrayOf(info[index], napi_float64_array);
}

// A whole number field of an options object ("dims.tokens must be an integer").
inline int IntField(const Napi::CallbackInfo& info, Napi::Object obj, const char* object, const char* field,
                    std::optional<int> fallback = std::nullopt) {
  Napi::Value value = obj.Get(field);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsNumber()) ThrowTypeError(info, std::string(object) + "." + field + " must be a number");
  const double x = value.As<Napi::Number>().DoubleValue();
  if (!(std::abs(x) < 2147483648.0) || x != std::trunc(x))
    ThrowTypeError(info, std::string(object) + "." + field + " must be an integer, got " + std::to_string(x));
  return static_cast<int>(x);
}

inline double NumberField(const Napi::CallbackInfo& info, Napi::Object obj, const char* object,
                          const char* field, std::optional<double> fallback = std::nullopt) {
  Napi::Value value = obj.Get(field);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsNumber()) ThrowTypeError(info, std::string(object) + "." + field + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

// Throws std::invalid_argument unless the array holds exactly `expected` elements.
template <typename T>
void ExpectLength(const ArrayArg<T>& a, size_t expected, const char* formula) {
  if (a.data != nullptr && a.length != expected) {
    throw std::invalid_argument(std::string(a.name) + " has " + std::to_string(a.length) +
                                " elements, expected " + formula + " = " + std::to_string(expected));
  }
}

// Runs `f` on the main thread, turning a C++ exception into a JavaScript Error with its message
// (node-addon-api only converts Napi::Error by itself).
template <typename F>
auto CallNative(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// A byte count argument: a non-negative integer JavaScript number (exact up to 2^53).
inline size_t ByteCount(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double x = NumberArg(info, index, name);
  if (!(x >= 0) || x != std::trunc(x) || x > 9007199254740992.0)
    ThrowTypeError(info, "argument " + std::to_string(index) + " (" + name +
                             ") must be a non-negative integer number of bytes, got " + std::to_string(x));
  return static_cast<size_t>(x);
}

// Runs `work` on a pool thread; the Promise resolves to undefined. The pins live as long as the
// worker and are released on the main thread.
inline Napi::Promise RunInPlace(Napi::Env env, std::shared_ptr<Pins> pins, std::function<void()> work) {
  struct Done {};
  return RunAsync<Done>(
      env,
      [work = std::move(work)](const ReportProgress&) {
        work();
        return Done{};
      },
      [pins](Napi::Env e, Done&) -> Napi::Value { return e.Undefined(); });
}

// As RunInPlace, with a result converted on the main thread.
template <typename Result>
Napi::Promise RunWithResult(Napi::Env env, std::shared_ptr<Pins> pins, std::function<Result()> work,
                            std::function<Napi::Value(Napi::Env, Result&)> to_js) {
  return RunAsync<Result>(
      env, [work = std::move(work)](const ReportProgress&) { return work(); },
      [pins, to_js = std::move(to_js)](Napi::Env e, Result& r) { return to_js(e, r); });
}

}  // namespace longctx::addon
