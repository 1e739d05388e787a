// Bindings that exist only for tests and benchmarks: the kernels one at a time, the naive and
// reference implementations they are held to, and probes of native internals (ISA row kernels,
// the device arena's ledger, staging round trips). Production code (the worker host, the
// orchestrator) uses only the areas in addon/registry.h. Both sets land on the addon's exports.
#pragma once

#include <napi.h>

namespace longctx::addon::testing {

void Register(Napi::Env env, Napi::Object exports);  // all of the below

void RegisterKernels(Napi::Env env, Napi::Object exports);         // CPU kernels and naive references
void RegisterAttention(Napi::Env env, Napi::Object exports);       // CPU attention, merge, row probes
void RegisterRing(Napi::Env env, Napi::Object exports);            // ring attention over a communicator
void RegisterReferenceModel(Napi::Env env, Napi::Object exports);  // the double-precision Qwen2
void RegisterCudaKernels(Napi::Env env, Napi::Object exports);     // CUDA kernels and probes (CUDA builds)

inline void Register(Napi::Env env, Napi::Object exports) {
  RegisterKernels(env, exports);
  RegisterAttention(env, exports);
  RegisterRing(env, exports);
  RegisterReferenceModel(env, exports);
  RegisterCudaKernels(env, exports);
}

}  // namespace longctx::addon::testing
