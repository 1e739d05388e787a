#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <stdexcept>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_collectives.h"
#include "kernels/cuda/host_staging.h"
#include "kernels/cuda/nccl_comm.h"

namespace longctx::cuda {

namespace {

// The gloo fallback: each exchange completes before StartSendRecv returns (the CPU communicator
// needs the bytes on the host), so there is nothing to overlap and JoinSendRecv has nothing to do.
class StagedCollectives final : public DeviceCollectives {
 public:
  StagedCollectives(comm::Communicator& comm, cudaStream_t compute)
      : collectives_(comm), staging_(collectives_, compute) {}
  std::string description() const override { return "gloo host staging"; }
  void AllReduceSum(float* data, size_t count) override { staging_.AllReduceSum(data, count); }
  void StartSendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes, int from,
                     uint32_t tag) override {
    staging_.SendRecv(send, send_bytes, to, recv, recv_bytes, from, tag);
  }
  void JoinSendRecv() override {}

 private:
  CommunicatorCollectives collectives_;
  HostStaging staging_;
};

std::string NcclVersion(int v) {
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

std::string WhyNotNccl(const nccl::Library& library) {
  return library.found ? "NCCL not usable" : "NCCL not found";
}

// Whether two ranks of `comm` drive the same GPU: each rank puts a 48-bit digest of its device's
// UUID in its own slot (exact in a double), the all-reduce gathers them.
bool RanksShareADevice(comm::Communicator& comm, int device) {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  uint64_t digest = 1469598103934665603ull;  // FNV-1a over the 16 UUID bytes
  for (int i = 0; i < 16; ++i)
    digest = (digest ^ static_cast<unsigned char>(prop.uuid.bytes[i])) * 1099511628211ull;
  std::vector<double> slots(static_cast<size_t>(comm.size()), 0.0);
  slots[static_cast<size_t>(comm.rank())] = static_cast<double>(digest >> 16);
  comm.AllReduceSum(slots.data(), slots.size());
  return std::set<double>(slots.begin(), slots.end()).size() < slots.size();
}

}  // namespace

std::string AutoCollectivesDescription() {
  const nccl::Library& library = nccl::Nccl();
  if (library.api != nullptr) return "NCCL " + NcclVersion(library.version) + " (" + library.path + ")";
  return WhyNotNccl(library) + ": using gloo host staging (" + library.error + ")";
}

CollectivesChoice ParseCollectivesChoice(const std::string& text) {
  if (text == "auto") return CollectivesChoice::kAuto;
  if (text == "nccl") return CollectivesChoice::kNccl;
  if (text == "staged") return CollectivesChoice::kStaged;
  throw std::invalid_argument("collectives must be 'auto', 'nccl' or 'staged', got '" + text + "'");
}

std::unique_ptr<DeviceCollectives> MakeDeviceCollectives(comm::Communicator& comm, int device,
                                                         cudaStream_t compute, CollectivesChoice choice,
                                                         std::string* note) {
  // NCCL refuses two ranks on one GPU; auto then stages (a rank per GPU is the fast layout,
  // sharing is for tests and small experiments). Every rank takes part in the check.
  if (choice == CollectivesChoice::kAuto && RanksShareADevice(comm, device)) {
    if (note != nullptr) *note = "ranks share a GPU: using gloo host staging";
    return std::make_unique<StagedCollectives>(comm, compute);
  }
  if (choice != CollectivesChoice::kStaged) {
    const nccl::Library& library = nccl::Nccl();
    if (library.api != nullptr) {
      NcclOptions options;
      options.rank = comm.rank();
      options.size = comm.size();
      options.device = device;
      options.redis_host = comm.redis_host();
      options.redis_port = comm.redis_port();
      options.prefix = comm.prefix();
      options.timeout = comm.timeout();
      return NcclCollectives::Connect(options, compute);
    }
    if (choice == CollectivesChoice::kNccl)
      throw comm::CommError("collectives 'nccl' was asked for: " + WhyNotNccl(library) + " (" +
                            library.error + ")");
    if (note != nullptr) *note = AutoCollectivesDescription();
  }
  return std::make_unique<StagedCollectives>(comm, compute);
}

}  // namespace longctx::cuda
