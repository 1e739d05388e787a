#include <string>

#include "addon/promise_worker.h"

namespace longctx::addon {

namespace {
[[noreturn]] void ThrowType(const Napi::CallbackInfo& info, size_t index, const char* name,
                            const char* want) {
  throw Napi::TypeError::New(
      info.Env(), std::string("argument ") + std::to_string(index) + " (" + name + ") must be " + want);
}
}  // namespace

double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsNumber()) ThrowType(info, index, name, "a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsString()) ThrowType(info, index, name, "a string");
  return info[index].As<Napi::String>().Utf8Value();
}

Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsObject()) ThrowType(info, index, name, "an object");
  return info[index].As<Napi::Object>();
}

std::optional<Napi::Function> OptionalFunctionArg(const Napi::CallbackInfo& info, size_t index,
                                                  const char* name) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return std::nullopt;
  if (!info[index].IsFunction()) ThrowType(info, index, name, "a function");
  return info[index].As<Napi::Function>();
}

Napi::Float32Array Float32Arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowType(info, index, name, "a Float32Array");
  }
  return info[index].As<Napi::Float32Array>();
}

}  // namespace longctx::addon
