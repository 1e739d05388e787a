// GPU communication without NCCL: device buffers staged through pinned host memory to the CPU
// communicator (gloo over TCP).
//
// On a node without NCCL (or for debugging a NCCL problem) the GPU ranks can still train: each
// collective copies the device buffer to pinned host memory, runs the CPU collective, and copies
// the result back. It costs two PCIe copies and a host round trip per call, so it is the fallback,
// not the fast path (nccl_comm.h).
//
// HostCollectives is the minimal interface the staging needs from a CPU communicator;
// CommunicatorCollectives adapts the gloo Communicator (comm/communicator.h) to it, and
// SelfCollectives is the world of one rank, complete on its own.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "comm/communicator.h"
#include "kernels/cuda/offload.h"

namespace longctx::cuda {

class HostCollectives {
 public:
  virtual ~HostCollectives() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: data[i] becomes the sum over ranks; every rank passes the same count.
  virtual void AllReduceSum(float* data, size_t count) = 0;
  // Sends send_bytes to rank `to` while receiving recv_bytes from rank `from` (both posted before
  // either is waited for, so a ring of these never deadlocks).
  virtual void SendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes, int from,
                        uint32_t tag) = 0;
};

// One rank: the all-reduce is the identity, and a rank sends to and receives from itself.
class SelfCollectives : public HostCollectives {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void AllReduceSum(float* data, size_t count) override {}
  void SendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes, int from,
                uint32_t tag) override;
};

// The gloo communicator as HostCollectives: SendRecv posts both transfers before waiting on
// either, so every rank of a ring can call it at once.
class CommunicatorCollectives final : public HostCollectives {
 public:
  explicit CommunicatorCollectives(comm::Communicator& comm) : comm_(comm) {}
  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  void AllReduceSum(float* data, size_t count) override { comm_.AllReduceSum(data, count); }
  void SendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes, int from,
                uint32_t tag) override {
    auto sending = comm_.ISend(to, send, send_bytes, tag);
    auto receiving = comm_.IRecv(from, recv, recv_bytes, tag);
    receiving->Wait();
    sending->Wait();
  }

 private:
  comm::Communicator& comm_;
};

class HostStaging {
 public:
  // Operations are ordered after the work already enqueued on `stream` and complete before they
  // return (the CPU collective needs the data on the host).
  HostStaging(HostCollectives& comm, cudaStream_t stream) : comm_(comm), stream_(stream) {}

  // In place on device memory.
  void AllReduceSum(float* device_data, size_t count);
  // Device to device across ranks: device_send goes to rank `to`, device_recv is filled from `from`.
  void SendRecv(const void* device_send, size_t send_bytes, int to, void* device_recv, size_t recv_bytes,
                int from, uint32_t tag);

 private:
  // Grows a pinned buffer to at least `bytes` (staging buffers are reused across calls).
  static void Reserve(PinnedBuffer& buffer, size_t bytes);

  HostCollectives& comm_;
  cudaStream_t stream_;
  PinnedBuffer send_;
  PinnedBuffer recv_;
};

}  // namespace longctx::cuda
