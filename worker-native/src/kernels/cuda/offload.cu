#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/offload.h"

namespace longctx::cuda {

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  cudaError_t status = cudaMallocHost(&data_, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    data_ = nullptr;
    throw DeviceOutOfMemoryError("pinned host memory: the driver refused " + FormatBytes(bytes) + " (" +
                                     std::to_string(bytes) + " bytes): " + cudaGetErrorString(status),
                                 bytes, 0, 0);
  }
}

PinnedBuffer::~PinnedBuffer() {
  if (data_ != nullptr) cudaFreeHost(data_);
}

PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) cudaFreeHost(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

PrefetchQueue::PrefetchQueue(DeviceArena& arena, size_t slot_bytes, int slots, cudaStream_t compute)
    : arena_(arena), slot_bytes_(slot_bytes), compute_(compute) {
  if (slots < 1)
    throw std::invalid_argument("PrefetchQueue needs at least one slot, got " + std::to_string(slots));
  try {
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
    for (int i = 0; i < slots; ++i) {
      buffers_.push_back(arena_.Allocate(slot_bytes));
      cudaEvent_t copied, released;
      CUDA_CHECK(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
      copied_.push_back(copied);
      CUDA_CHECK(cudaEventCreateWithFlags(&released, cudaEventDisableTiming));
      released_.push_back(released);
    }
  } catch (...) {
    Cleanup();
    throw;
  }
}

PrefetchQueue::~PrefetchQueue() { Cleanup(); }

void PrefetchQueue::Cleanup() {
  // Nothing may still write into the slots once they go back to the arena.
  if (copy_ != nullptr) cudaStreamSynchronize(copy_);
  for (cudaEvent_t e : copied_) cudaEventDestroy(e);
  for (cudaEvent_t e : released_) cudaEventDestroy(e);
  copied_.clear();
  released_.clear();
  for (void* b : buffers_) arena_.Free(b);
  buffers_.clear();
  if (copy_ != nullptr) cudaStreamDestroy(copy_);
  copy_ = nullptr;
}

void PrefetchQueue::CheckTicket(int64_t ticket, const char* op) const {
  if (ticket < 0 || ticket >= next_ticket_)
    throw std::logic_error(std::string("PrefetchQueue::") + op + ": ticket " + std::to_string(ticket) +
                           " was never prefetched");
}

int64_t PrefetchQueue::Prefetch(const void* host_src, size_t bytes) {
  if (bytes > slot_bytes_)
    throw std::logic_error("PrefetchQueue::Prefetch: " + std::to_string(bytes) +
                           " bytes do not fit a slot of " + std::to_string(slot_bytes_));
  const int64_t ticket = next_ticket_;
  const int64_t previous = ticket - slots();
  if (previous >= next_release_)
    throw std::logic_error("PrefetchQueue::Prefetch: ticket " + std::to_string(ticket) +
                           " needs the slot of ticket " + std::to_string(previous) +
                           ", which was not released (at most " + std::to_string(slots()) + " in flight)");
  const int slot = static_cast<int>(ticket % slots());
  if (previous >= 0) CUDA_CHECK(cudaStreamWaitEvent(copy_, released_[slot], 0));
  CUDA_CHECK(cudaMemcpyAsync(buffers_[slot], host_src, bytes, cudaMemcpyHostToDevice, copy_));
  CUDA_CHECK(cudaEventRecord(copied_[slot], copy_));
  next_ticket_ = ticket + 1;
  return ticket;
}

void* PrefetchQueue::Acquire(int64_t ticket) {
  CheckTicket(ticket, "Acquire");
  if (ticket != next_acquire_)
    throw std::logic_error("PrefetchQueue::Acquire: expected ticket " + std::to_string(next_acquire_) +
                           ", got " + std::to_string(ticket));
  const int slot = static_cast<int>(ticket % slots());
  CUDA_CHECK(cudaStreamWaitEvent(compute_, copied_[slot], 0));
  next_acquire_ = ticket + 1;
  return buffers_[slot];
}

void PrefetchQueue::Release(int64_t ticket) {
  CheckTicket(ticket, "Release");
  if (ticket != next_release_ || ticket >= next_acquire_)
    throw std::logic_error("PrefetchQueue::Release: expected an acquired ticket " +
                           std::to_string(next_release_) + ", got " + std::to_string(ticket));
  CUDA_CHECK(cudaEventRecord(released_[ticket % slots()], compute_));
  next_release_ = ticket + 1;
}

}  // namespace longctx::cuda
