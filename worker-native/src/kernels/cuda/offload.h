// Parameter offload: weights live in host memory and come onto the device one layer ahead.
//
// Two things make the copy overlap the compute: the host memory is pinned (a copy from pageable
// memory goes through a driver bounce buffer and blocks the host), and it runs on its own copy
// stream, ordered against the compute stream only through events. PrefetchQueue keeps `slots`
// device buffers: while layer L computes out of one slot, layer L+1's weights copy into another.
//
//   PrefetchQueue queue(arena, layer_bytes, 2, compute);
//   queue.Prefetch(host_weights[0], bytes);                 // ticket 0
//   for (L = 0; L < layers; ++L) {
//     if (L + 1 < layers) queue.Prefetch(host_weights[L + 1], bytes);   // ticket L + 1
//     void* w = queue.Acquire(L);   // compute waits for the copy, not the host
//     ... launch layer L's kernels on `compute`, reading w ...
//     queue.Release(L);             // the slot may be refilled once those kernels finish
//   }
// Tickets are consecutive from 0, one per Prefetch; Acquire and Release take them in order.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cuda/device_arena.h"

namespace longctx::cuda {

// Page-locked host memory (cudaMallocHost). Move-only; freed on destruction.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class PrefetchQueue {
 public:
  // Takes slots × slot_bytes from the arena for the buffers; compute is the stream that reads them.
  PrefetchQueue(DeviceArena& arena, size_t slot_bytes, int slots, cudaStream_t compute);
  ~PrefetchQueue();
  PrefetchQueue(const PrefetchQueue&) = delete;
  PrefetchQueue& operator=(const PrefetchQueue&) = delete;

  // Enqueues the copy of `bytes` (≤ slot_bytes) from host memory (pinned, for the overlap) into the
  // next slot, after the compute work that last used that slot; returns its ticket. Throws
  // std::logic_error when the slot's previous ticket was not released yet (more than `slots`
  // layers in flight) or bytes exceeds the slot.
  int64_t Prefetch(const void* host_src, size_t bytes);
  // Makes the compute stream wait for the ticket's copy; returns the slot's device memory.
  void* Acquire(int64_t ticket);
  // Marks the point on the compute stream after which the ticket's slot may be overwritten.
  void Release(int64_t ticket);

  cudaStream_t copy_stream() const { return copy_; }
  int slots() const { return static_cast<int>(buffers_.size()); }
  size_t slot_bytes() const { return slot_bytes_; }

 private:
  void CheckTicket(int64_t ticket, const char* op) const;
  void Cleanup();  // waits for the copy stream, then frees events, slots and the stream

  DeviceArena& arena_;
  size_t slot_bytes_;
  cudaStream_t compute_;
  cudaStream_t copy_ = nullptr;
  std::vector<void*> buffers_;
  std::vector<cudaEvent_t> copied_;    // recorded on the copy stream after a slot's copy
  std::vector<cudaEvent_t> released_;  // recorded on the compute stream after a slot's last reader
  int64_t next_ticket_ = 0;
  int64_t next_acquire_ = 0;
  int64_t next_release_ = 0;
};

}  // namespace longctx::cuda
