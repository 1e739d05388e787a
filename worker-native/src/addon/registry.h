// The production areas of the native worker: each adds its functions to the addon's exports here,
// and addon.cc calls every Register* once when the module loads. Bindings for tests and benchmarks
// only are registered apart (testing/testing.h). How to declare a binding: napi_toolkit.h.
#pragma once

#include <napi.h>

#include <string>

#include "model/qwen2_config.h"
#include "tensor/arena.h"

namespace longctx::addon {

void RegisterSystem(Napi::Env env, Napi::Object exports);   // build info, sgemm probe, BLAS threads
void RegisterComm(Napi::Env env, Napi::Object exports);     // gloo communicator
void RegisterData(Napi::Env env, Napi::Object exports);     // token file reader, zigzag map
void RegisterArena(Napi::Env env, Napi::Object exports);    // the counted CPU arena
void RegisterModel(Napi::Env env, Napi::Object exports);    // the Qwen2 model on one CPU device
void RegisterTrainer(Napi::Env env, Napi::Object exports);  // what one rank runs each training step
void RegisterCuda(Napi::Env env, Napi::Object exports);     // CUDA backend info (only in CUDA builds)

// Shared by several bindings.
// A Hugging Face config.json object; `name` prefixes field names in errors (model_binding.cc).
model::Qwen2Config Qwen2ConfigFromJs(const Napi::CallbackInfo& info, Napi::Object o, const std::string& name);
Napi::Object ArenaStatsToJs(Napi::Env env, const ArenaStats& s);  // arena_binding.cc

}  // namespace longctx::addon
