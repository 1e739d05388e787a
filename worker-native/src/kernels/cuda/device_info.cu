#include <cuda_runtime.h>

#include "kernels/cuda/device_info.h"

namespace longctx::cuda {

int DeviceCount() {
  int count = 0;
  // Without a driver this returns cudaErrorNoDevice/InsufficientDriver: that means no devices.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::string DeviceName(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

size_t DeviceMemoryBytes(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return prop.totalGlobalMem;
}

}  // namespace longctx::cuda
