// The CUDA backend as production code sees it, present only in builds with CUDA
// (LONGCTX_WITH_CUDA); without it RegisterCuda adds nothing and buildInfo().cuda is false. The
// kernels one at a time, for tests and benchmarks, are testing/cuda_kernels_binding.cc.
#ifdef LONGCTX_WITH_CUDA

#include "addon/napi_toolkit.h"
#include "addon/registry.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/nccl_comm.h"

namespace longctx::addon {

namespace {

namespace cu = longctx::cuda;

// cudaBackendInfo() → {devices, deviceNames, cublasLt, nccl}
Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  const int devices = cu::DeviceCount();
  out.Set("devices", devices);
  Napi::Array names = Napi::Array::New(env, devices);
  for (int i = 0; i < devices; ++i) names.Set(i, cu::DeviceName(i));
  out.Set("deviceNames", names);
  out.Set("cublasLt", cu::HaveCublasLt());
  out.Set("nccl", cu::HaveNccl());
  return out;
}

}  // namespace

void RegisterCuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaBackendInfo", Napi::Function::New(env, BackendInfo, "cudaBackendInfo"));
}

}  // namespace longctx::addon

#else  // !LONGCTX_WITH_CUDA

#include "addon/registry.h"

namespace longctx::addon {
void RegisterCuda(Napi::Env env, Napi::Object exports) {}  // no CUDA in this build: no cuda* functions
}  // namespace longctx::addon

#endif  // LONGCTX_WITH_CUDA
