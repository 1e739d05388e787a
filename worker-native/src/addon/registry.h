// Each area of the native worker adds its functions to the addon's exports here; addon.cc calls
// every Register* once when the module loads.
#pragma once

#include <napi.h>

namespace longctx::addon {

void RegisterSystem(Napi::Env env, Napi::Object exports);   // build info, sgemm probe
void RegisterComm(Napi::Env env, Napi::Object exports);     // gloo communicator
void RegisterKernels(Napi::Env env, Napi::Object exports);  // CPU kernels and the arena
void RegisterData(Napi::Env env, Napi::Object exports);     // token file reader, zigzag map
void RegisterCuda(Napi::Env env, Napi::Object exports);     // CUDA kernels (only in CUDA builds)

// CPU attention kernels (flash and naive reference) and the ring merge.
void RegisterAttention(Napi::Env env, Napi::Object exports);  // CPU flash attention kernels
void RegisterRing(Napi::Env env, Napi::Object exports);       // ring attention over a communicator
void RegisterTrainer(Napi::Env env, Napi::Object exports);    // what one rank runs each training step

}  // namespace longctx::addon
