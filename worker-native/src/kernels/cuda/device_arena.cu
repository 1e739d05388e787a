#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_arena.h"

namespace longctx::cuda {

DeviceArena::DeviceArena(std::string label, size_t budget_bytes) : ledger_(std::move(label), budget_bytes) {
  CUDA_CHECK(cudaGetDevice(&device_));
  if (budget_bytes == 0) return;
  cudaError_t status = cudaMalloc(&base_, budget_bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are not blamed for it
    base_ = nullptr;
    throw DeviceOutOfMemoryError(ledger_.label() + ": the driver refused a region of " +
                                     FormatBytes(budget_bytes) + " (" + std::to_string(budget_bytes) +
                                     " bytes) on device " + std::to_string(device_) + ": " +
                                     cudaGetErrorString(status),
                                 budget_bytes, 0, budget_bytes);
  }
}

DeviceArena::~DeviceArena() {
  if (base_ != nullptr) cudaFree(base_);  // errors here cannot be reported from a destructor
}

void* DeviceArena::Allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  return base_ + ledger_.Allocate(bytes);
}

void DeviceArena::Free(void* ptr) {
  if (ptr == nullptr) return;
  char* p = static_cast<char*>(ptr);
  if (base_ == nullptr || p < base_ || p >= base_ + ledger_.budget())
    throw std::logic_error(ledger_.label() + ": freeing a pointer this arena did not allocate");
  ledger_.Free(static_cast<size_t>(p - base_));
}

}  // namespace longctx::cuda
