// Every CUDA runtime call goes through CUDA_CHECK: a failure becomes a std::runtime_error naming the
// call, the file and line, and CUDA's own message, so it reaches JavaScript as a rejected Promise
// instead of a silent wrong result. Kernel launches are checked with CUDA_CHECK(cudaGetLastError()).
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace longctx::cuda {

[[noreturn]] inline void ThrowCudaError(cudaError_t status, const char* what, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(status) + " (" +
                           cudaGetErrorString(status) + ") in " + what + " at " + file + ":" +
                           std::to_string(line));
}

}  // namespace longctx::cuda

#define CUDA_CHECK(call)                                                                \
  do {                                                                                  \
    cudaError_t longctx_cuda_status_ = (call);                                          \
    if (longctx_cuda_status_ != cudaSuccess)                                            \
      ::longctx::cuda::ThrowCudaError(longctx_cuda_status_, #call, __FILE__, __LINE__); \
  } while (0)
