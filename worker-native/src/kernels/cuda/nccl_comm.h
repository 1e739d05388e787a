// GPU collectives over NCCL, when the build found it (LONGCTX_HAVE_NCCL); otherwise GPU ranks
// use HostStaging (host_staging.h). Not compiled on machines without NCCL.
//
// Rendezvous: NCCL ranks meet through a 128-byte ncclUniqueId that rank 0 creates. We pass it
// through the same Redis the gloo rendezvous uses, under the job attempt's prefix: rank 0 SETs
// "<prefix>/nccl-unique-id" (with an expiry, so a dead attempt leaves nothing behind), the other
// ranks poll GET until it appears or the timeout passes, then every rank calls ncclCommInitRank.
// A new attempt has a new prefix, so it never reads a stale id.
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace longctx::cuda {

// True when this build has the NCCL communicator.
bool HaveNccl();

}  // namespace longctx::cuda

#ifdef LONGCTX_HAVE_NCCL
#include <nccl.h>

namespace longctx::cuda {

struct NcclOptions {
  int rank = -1;
  int size = 0;
  int device = 0;  // the CUDA device this rank drives
  std::string redis_host = "127.0.0.1";
  int redis_port = 6379;
  std::string prefix;  // "longctx/<job>/<attempt>", as for the gloo communicator
  std::chrono::milliseconds timeout{30000};
};

class NcclCommunicator {
 public:
  // Exchanges the unique id through Redis and initialises the communicator. Throws
  // std::runtime_error naming the option at fault, the Redis failure, or the NCCL error.
  static std::unique_ptr<NcclCommunicator> Connect(const NcclOptions& options);
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Enqueued on `stream`; in place.
  void AllReduceSum(float* data, size_t count, cudaStream_t stream);
  // Send to `to` and receive from `from` as one group (the ring exchange of K/V blocks).
  void SendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes, int from,
                cudaStream_t stream);

 private:
  NcclCommunicator(ncclComm_t comm, int rank, int size) : comm_(comm), rank_(rank), size_(size) {}
  ncclComm_t comm_;
  int rank_;
  int size_;
};

}  // namespace longctx::cuda
#endif  // LONGCTX_HAVE_NCCL
