// GPU collectives over NCCL (opened at run time, nccl_api.h).
//
// Rendezvous: NCCL ranks meet through a 128-byte unique id that rank 0 creates. It travels through
// the same Redis the gloo rendezvous uses, under the job attempt's prefix: rank 0 SETs
// "<prefix>/nccl-unique-id" (with an expiry, so a dead attempt leaves nothing behind), the others
// poll GET until it appears or the timeout passes. A new attempt has a new prefix, so it never
// reads a stale id.
//
// Failure: NCCL operations do not fail by themselves when a peer dies; they wait. A watchdog
// thread polls every operation in flight and NCCL's asynchronous error; an operation that started
// and has not finished within the communicator's timeout, or an asynchronous error, aborts the
// communicator (ncclCommAbort ends the waiting kernels) and is reported by the next call or by
// ThrowIfFailed, as comm::CommError, like a gloo failure.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "kernels/cuda/device_collectives.h"
#include "kernels/cuda/nccl_api.h"

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

class NcclCollectives final : public DeviceCollectives {
 public:
  // Exchanges the unique id through Redis and initialises the communicator within the timeout.
  // Throws std::invalid_argument for bad options, comm::CommError for the rendezvous or NCCL.
  static std::unique_ptr<NcclCollectives> Connect(const NcclOptions& options, cudaStream_t compute);
  ~NcclCollectives() override;
  NcclCollectives(const NcclCollectives&) = delete;
  NcclCollectives& operator=(const NcclCollectives&) = delete;

  std::string description() const override;
  void AllReduceSum(float* data, size_t count) override;
  void StartSendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes, int from,
                     uint32_t tag) override;
  void JoinSendRecv() override;
  void ThrowIfFailed() override;

 private:
  // An operation on the communication stream: `started` completes when the stream reaches it,
  // `done` when it finished.
  struct InFlight {
    cudaEvent_t started = nullptr;
    cudaEvent_t done = nullptr;
    std::string what;
    std::chrono::steady_clock::time_point started_at{};
    bool seen_started = false;
  };

  NcclCollectives(nccl::Comm comm, const NcclOptions& options, cudaStream_t compute);
  // Makes the communication stream wait for the compute stream and marks the start of an operation.
  cudaEvent_t Begin(const std::string& what);
  // Marks its end; returns the event the compute stream may wait for.
  cudaEvent_t End();
  void Watch();
  void Fail(const std::string& message);

  const nccl::Api& api_;
  nccl::Comm comm_;
  const NcclOptions options_;
  cudaStream_t compute_;
  cudaStream_t stream_ = nullptr;   // the communication stream
  cudaEvent_t ready_ = nullptr;     // compute → communication ordering
  cudaEvent_t exchange_ = nullptr;  // the pending SendRecv's completion, for JoinSendRecv

  std::mutex mutex_;  // guards in_flight_, failure_, stop_
  std::condition_variable wake_;
  std::deque<InFlight> in_flight_;
  std::string failure_;
  bool stop_ = false;
  std::atomic<bool> aborted_{false};
  std::thread watchdog_;
};

}  // namespace longctx::cuda
