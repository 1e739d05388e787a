// How the GPU ranks of a job exchange device memory. Two ways, chosen when the trainer starts:
//   NCCL (nccl_comm.h)        on device buffers, on a communication stream of its own, so a ring
//                             step's K/V transfer runs while the attention kernels compute;
//   gloo host staging         device buffers copied through pinned host memory to the CPU
//   (host_staging.h)          communicator: what runs without NCCL, or when several ranks share
//                             one GPU (NCCL refuses two ranks on one device).
// Both are ordered on the rank's compute stream: an operation starts after the work already
// issued there, and work issued there afterwards sees its result.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "comm/communicator.h"

namespace longctx::cuda {

class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  // For the job's log: "NCCL 2.27.3 (<path>)" or "gloo host staging".
  virtual std::string description() const = 0;
  // In place on device memory: data[i] becomes the sum over ranks.
  virtual void AllReduceSum(float* data, size_t count) = 0;
  // Starts sending `send` to rank `to` while receiving into `recv` from rank `from` (both device
  // memory, untouched by anyone until JoinSendRecv). One exchange in flight at a time.
  virtual void StartSendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes,
                             int from, uint32_t tag) = 0;
  // Work issued on the compute stream after this sees the received bytes.
  virtual void JoinSendRecv() = 0;
  // NCCL fails asynchronously (a peer died, an operation passed the timeout): after waiting for the
  // compute stream, this throws comm::CommError with the first failure. Staging throws at once.
  virtual void ThrowIfFailed() {}
};

enum class CollectivesChoice { kAuto, kNccl, kStaged };

// "auto", "nccl" or "staged"; throws std::invalid_argument naming the accepted values.
CollectivesChoice ParseCollectivesChoice(const std::string& text);

// What kAuto picks on this host, in words: "NCCL 2.27.3 (<path>)", or "NCCL not found: using gloo
// host staging (<where it looked>)" / "NCCL not usable: using gloo host staging (<what it lacks>)".
std::string AutoCollectivesDescription();

// What the trainer's GPU ranks use, over the job's gloo communicator `comm` (its Redis and prefix
// are where NCCL's unique id travels). kAuto takes NCCL when the host has it and every rank has a
// GPU of its own, else staging, and writes why into *note ("NCCL not found: using gloo host staging
// (...)", "ranks share a GPU: ..."); kNccl throws when NCCL is missing. A collective call: every
// rank makes it, with the same choice (they meet in the device check and in NCCL's init).
std::unique_ptr<DeviceCollectives> MakeDeviceCollectives(comm::Communicator& comm, int device,
                                                         cudaStream_t compute, CollectivesChoice choice,
                                                         std::string* note);

}  // namespace longctx::cuda
