// The CUDA backend (backend.h): one device, one compute stream.
//
// Memory: the device arena's bytes come from one cudaMalloc'd region of the budget's size, carved
// by the ArenaLedger (kernels/cuda/arena_ledger.h: first fit, merged frees), and counted by Arena
// exactly like an emulated device's; the host arena's bytes are pinned (cudaMallocHost), so the
// offloaded state copies by DMA without a driver bounce buffer. Every kernel, copy and memset runs
// on the compute stream in program order, so a block freed after its last kernel is safe to hand
// out again at once; Copy and the norm wait for the stream because the host reads the result.
//
// Compiled only in a build with CUDA (LONGCTX_WITH_CUDA).
#ifdef LONGCTX_WITH_CUDA
#include <cuda_runtime_api.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cuda/arena_ledger.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_collectives.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/model_ops.h"
#include "kernels/cuda/optimizer.h"
#include "model/cuda_model_kernels.h"
#include "ring/cuda_ring_attention.h"
#include "train/backend.h"

namespace longctx::train {

namespace {

namespace cu = longctx::cuda;

// A device region of `budget` bytes handed out by the ledger.
class DeviceRegion final : public MemorySource {
 public:
  DeviceRegion(const std::string& label, size_t budget, cudaStream_t stream)
      : ledger_(label, budget), stream_(stream) {
    if (budget == 0) return;
    const cudaError_t status = cudaMalloc(reinterpret_cast<void**>(&base_), budget);
    if (status != cudaSuccess) {
      cudaGetLastError();  // clears the sticky error of a failed allocation
      throw OutOfMemoryError(label + ": the driver refused a region of " + FormatBytes(budget) + " (" +
                                 cudaGetErrorString(status) + ")",
                             budget, 0, budget);
    }
  }
  ~DeviceRegion() override {
    if (base_ != nullptr) cudaFree(base_);
  }
  size_t alignment() const override { return cu::ArenaLedger::kAlignment; }
  void* Reserve(size_t bytes) override {
    try {
      return base_ + ledger_.Allocate(bytes);
    } catch (const OutOfMemoryError&) {
      return nullptr;  // fragmented: the Arena reports it with its own counters
    }
  }
  void Return(void* ptr) override { ledger_.Free(static_cast<size_t>(static_cast<char*>(ptr) - base_)); }
  void Zero(void* ptr, size_t bytes) override { CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream_)); }
  std::string refusal() const override {
    return "the device region has no free range that large (largest " + FormatBytes(ledger_.largest_free()) +
           ")";
  }

 private:
  cu::ArenaLedger ledger_;
  cudaStream_t stream_;
  char* base_ = nullptr;
};

// Page-locked host memory: what the offloaded parameters and moments live in.
class PinnedMemory final : public MemorySource {
 public:
  size_t alignment() const override { return Arena::kAlignment; }
  void* Reserve(size_t bytes) override {
    void* ptr = nullptr;
    if (cudaMallocHost(&ptr, bytes) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    return ptr;
  }
  void Return(void* ptr) override { cudaFreeHost(ptr); }
  void Zero(void* ptr, size_t bytes) override { std::memset(ptr, 0, bytes); }
  std::string refusal() const override { return "cudaMallocHost refused the pinned memory"; }
};

// The node agent gives a GPU rank the whole GPU's memory as its budget, but the CUDA context and
// the libraries' workspaces live outside the arena: the region is the budget or what is free less
// kOutsideArena, whichever is smaller, and the arena's budget is that region (what it can hand out).
constexpr size_t kOutsideArena = size_t{1} << 30;

size_t ReservableBytes(size_t budget) {
  size_t free = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free, &total));
  const size_t usable = free > kOutsideArena ? free - kOutsideArena : 0;
  return budget < usable ? budget : usable;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int index, const std::string& device_label, size_t device_budget_bytes,
              size_t host_budget_bytes, cu::CollectivesChoice collectives)
      : Backend(DType::kBF16), index_(index), collectives_choice_(collectives) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();
      count = 0;
    }
    if (index < 0 || index >= count)
      throw std::runtime_error("device cuda:" + std::to_string(index) + ": this host has " +
                               std::to_string(count) + " CUDA device(s)");
    CUDA_CHECK(cudaSetDevice(index_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&issued_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
    const size_t budget = ReservableBytes(device_budget_bytes);
    device_ = std::make_shared<Arena>(device_label, budget,
                                      std::make_unique<DeviceRegion>(device_label, budget, stream_));
    host_ = std::make_shared<Arena>("host", host_budget_bytes, std::make_unique<PinnedMemory>());
    sums_ =
        Tensor::Empty(device_, {static_cast<int64_t>(cu::SumOfSquaresWorkspaceBytes() / sizeof(float)) + 2});
  }
  ~CudaBackend() override {
    cudaSetDevice(index_);
    cudaStreamSynchronize(copy_);
    cudaStreamSynchronize(stream_);
    collectives_.reset();  // before the streams it is ordered on
    sums_.Release();
    // The arenas may outlive this object (Tensors hold them): they free into their sources, which
    // only need the device, not the streams.
    cudaEventDestroy(issued_);
    cudaEventDestroy(copied_);
    cudaStreamDestroy(copy_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda:" + std::to_string(index_); }
  const std::shared_ptr<Arena>& device() const override { return device_; }
  const std::shared_ptr<Arena>& host() const override { return host_; }
  std::unique_ptr<model::ModelKernels> MakeKernels(model::SequenceAttention&,
                                                   comm::Communicator* comm) override {
    std::unique_ptr<model::DeviceSequenceAttention> ring;
    if (comm != nullptr && comm->size() > 1)
      ring = std::make_unique<ring::CudaRingAttention>(CollectivesFor(*comm), comm->rank(), comm->size(),
                                                       device_, stream_);
    return std::make_unique<model::CudaModelKernels>(device_, stream_, std::move(ring));
  }
  void Activate() override { CUDA_CHECK(cudaSetDevice(index_)); }

  void Copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    // A collective that failed asynchronously let the stream run on with what it had: say so
    // before anyone reads the result.
    if (collectives_) collectives_->ThrowIfFailed();
  }
  // The copy stream waits for the compute work issued so far (dst may have been freed by it a moment
  // ago), then copies from pinned memory by DMA while the compute stream goes on.
  void CopyAsync(void* dst, const void* src, size_t bytes) override {
    CUDA_CHECK(cudaEventRecord(issued_, stream_));
    CUDA_CHECK(cudaStreamWaitEvent(copy_, issued_, 0));
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, copy_));
    CUDA_CHECK(cudaEventRecord(copied_, copy_));
  }
  void WaitCopies() override { CUDA_CHECK(cudaStreamWaitEvent(stream_, copied_, 0)); }
  bool overlaps_copies() const override { return true; }
  void ToCompute(void* dst, const float* src, int64_t n, bool on_host) override {
    if (!on_host) {
      cu::FloatToBf16(static_cast<cu::bf16*>(dst), src, n, stream_);
      return;
    }
    // Round to nearest even on the host, exactly as the device conversion (bf16.h).
    auto* out = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) out[i] = cu::FloatToBf16Bits(src[i]);
  }
  void AddInPlace(float* acc, const float* x, int64_t n) override { cu::AddInPlace(acc, x, n, stream_); }
  double SumOfSquares(const float* x, int64_t n) override {
    auto* result = static_cast<double*>(sums_.raw());
    cu::SumOfSquares(x, n, result, false, result + 1, stream_);
    double host = 0;
    Copy(&host, result, sizeof(host));
    return host;
  }
  void ScaleInPlace(float* x, int64_t n, float s) override { cu::ScaleInPlace(x, n, s, stream_); }
  void AdamW(const AdamWStep& h, float* params, const float* grads, float* m, float* v, int64_t n) override {
    const cu::AdamWHyper hyper{static_cast<float>(h.lr), static_cast<float>(h.beta1),
                               static_cast<float>(h.beta2), static_cast<float>(h.eps),
                               static_cast<float>(h.weight_decay)};
    cu::AdamWUpdate(hyper, h.step, params, grads, m, v, n, nullptr, stream_);
  }
  void Fill(float* x, int64_t n, float value) override { cu::Fill(x, n, value, stream_); }
  void AllReduceSum(comm::Communicator& comm, float* data, size_t count) override {
    CollectivesFor(comm).AllReduceSum(data, count);
  }
  std::string collectives() const override {
    if (!collectives_) return "";
    return collectives_note_.empty() ? collectives_->description() : collectives_note_;
  }

 private:
  // Made on first use, which every rank reaches at the same point (NCCL's init is collective).
  cu::DeviceCollectives& CollectivesFor(comm::Communicator& comm) {
    if (!collectives_)
      collectives_ =
          cu::MakeDeviceCollectives(comm, index_, stream_, collectives_choice_, &collectives_note_);
    return *collectives_;
  }

  int index_;
  cu::CollectivesChoice collectives_choice_;
  std::unique_ptr<cu::DeviceCollectives> collectives_;
  std::string collectives_note_;  // why NCCL is not used, when it is not
  cudaStream_t stream_ = nullptr;
  cudaStream_t copy_ = nullptr;  // the prefetch of offloaded weights (CopyAsync)
  cudaEvent_t issued_ = nullptr;
  cudaEvent_t copied_ = nullptr;
  std::shared_ptr<Arena> device_;
  std::shared_ptr<Arena> host_;
  Tensor sums_;  // the norm's result (one double) and its workspace
};

}  // namespace

std::unique_ptr<Backend> MakeCudaBackend(int index, const std::string& device_label,
                                         size_t device_budget_bytes, size_t host_budget_bytes,
                                         const std::string& collectives) {
  return std::make_unique<CudaBackend>(index, device_label, device_budget_bytes, host_budget_bytes,
                                       cu::ParseCollectivesChoice(collectives));
}

}  // namespace longctx::train
#endif  // LONGCTX_WITH_CUDA
