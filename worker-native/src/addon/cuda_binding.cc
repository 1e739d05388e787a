// The CUDA backend as production code sees it, present only in builds with CUDA
// (LONGCTX_WITH_CUDA); without it RegisterCuda adds nothing and buildInfo().cuda is false. The
// kernels one at a time, for tests and benchmarks, are testing/cuda_kernels_binding.cc.
#ifdef LONGCTX_WITH_CUDA

#include "addon/napi_toolkit.h"
#include "addon/registry.h"
#include "kernels/cuda/cublaslt_api.h"
#include "kernels/cuda/device_collectives.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/nccl_api.h"

namespace longctx::addon {

namespace {

namespace cu = longctx::cuda;

// {found, usable, path, version, error} of a library opened at run time.
template <typename Library>
Napi::Object LibraryToJs(Napi::Env env, const Library& library) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("found", library.found);
  out.Set("usable", library.api != nullptr);
  out.Set("path", library.path);
  out.Set("version", static_cast<double>(library.version));
  out.Set("error", library.error);
  return out;
}

// cudaBackendInfo() → {devices, deviceNames, deviceMemoryBytes, cublasLt, nccl, libraries, collectives}
// (cublasLt and nccl: usable; libraries: where each was found, or why not; collectives: what a
// multi-rank GPU job would use, in words).
Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  const int devices = cu::DeviceCount();
  out.Set("devices", devices);
  Napi::Array names = Napi::Array::New(env, devices);
  Napi::Array memory = Napi::Array::New(env, devices);
  for (int i = 0; i < devices; ++i) {
    names.Set(i, cu::DeviceName(i));
    memory.Set(i, static_cast<double>(cu::DeviceMemoryBytes(i)));
  }
  out.Set("deviceNames", names);
  out.Set("deviceMemoryBytes", memory);
  out.Set("cublasLt", cu::lt::CublasLt().api != nullptr);
  out.Set("nccl", cu::nccl::Nccl().api != nullptr);
  Napi::Object libraries = Napi::Object::New(env);
  libraries.Set("cublasLt", LibraryToJs(env, cu::lt::CublasLt()));
  libraries.Set("nccl", LibraryToJs(env, cu::nccl::Nccl()));
  out.Set("libraries", libraries);
  out.Set("collectives", cu::AutoCollectivesDescription());
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
