// Where a trainer runs: the device's memory and kernels, and the few operations the trainer itself
// performs on device memory (copies, the gradient norm, clipping, AdamW, the parameter gather).
// The trainer, the model pass and the parameter store are written once against this; a backend
// only swaps what runs underneath:
//   CpuBackend   an emulated CPU device: float32 kernels, two system-memory Arenas ("device" and
//                "host"), a copy is a memcpy. What every CPU test checks bitwise.
//   CudaBackend  one CUDA device (train/cuda_backend.h): bf16 compute copy of the weights and bf16
//                activations, float32 master weights, gradients and moments; the device arena is
//                a cudaMalloc'd region and the host arena pinned memory, both counted by Arena.
// Operations on host memory (the offloaded optimizer step) are the CPU kernels on both backends.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "model/model_kernels.h"
#include "model/sequence_attention.h"
#include "tensor/arena.h"
#include "tensor/tensor.h"

namespace longctx::train {

// AdamW hyperparameters of one update (kernels/cpu/adamw.h: torch.optim.AdamW).
struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // counted from 1
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu" or "cuda:<index>".
  virtual std::string name() const = 0;
  virtual const std::shared_ptr<Arena>& device() const = 0;
  virtual const std::shared_ptr<Arena>& host() const = 0;
  // The kernel table the model runs. The CPU's attends through `attention` (the ring or the local
  // kernel); the GPU's runs its own ring over `comm` when that has several ranks (null: one rank).
  virtual std::unique_ptr<model::ModelKernels> MakeKernels(model::SequenceAttention& attention,
                                                           comm::Communicator* comm) = 0;
  // The element type of the weights the kernels read: float32 (the master weights themselves) or bf16
  // (a compute copy refreshed from them after each change).
  DType compute_type() const { return compute_type_; }
  // Makes the calling thread use this backend's device (calls arrive on different pool threads).
  virtual void Activate() {}

  // Copies between any two memories of this backend (device, host, or the caller's); returns when done.
  virtual void Copy(void* dst, const void* src, size_t bytes) = 0;
  // Starts copying `bytes` of host memory into device memory in the background, after the device
  // work issued so far (so dst may be memory freed a moment ago); WaitCopies makes the device work
  // issued after it wait for that copy. One copy in flight at a time. Where copies do not overlap the
  // device's work (overlaps_copies() false: the CPU) it copies at once.
  virtual void CopyAsync(void* dst, const void* src, size_t bytes) { Copy(dst, src, bytes); }
  virtual void WaitCopies() {}
  virtual bool overlaps_copies() const { return false; }
  // dst[0, n) (compute_type) = src[0, n) rounded; dst and src are both device or both host memory.
  virtual void ToCompute(void* dst, const float* src, int64_t n, bool on_host) = 0;

  // Device memory:
  virtual void AddInPlace(float* acc, const float* x, int64_t n) = 0;
  virtual double SumOfSquares(const float* x, int64_t n) = 0;
  virtual void ScaleInPlace(float* x, int64_t n, float s) = 0;
  virtual void AdamW(const AdamWStep& hyper, float* params, const float* grads, float* m, float* v,
                     int64_t n) = 0;
  virtual void Fill(float* x, int64_t n, float value) = 0;
  // In place: the sum across the communicator's ranks of device memory.
  virtual void AllReduceSum(comm::Communicator& comm, float* data, size_t count) = 0;
  // How device memory travels between ranks, for the job's log ("NCCL 2.27.3 (...)", or why not);
  // empty where nothing travels yet or the ranks use the CPU communicator directly.
  virtual std::string collectives() const { return ""; }

 protected:
  explicit Backend(DType compute_type) : compute_type_(compute_type) {}

 private:
  DType compute_type_;
};

// The emulated CPU device.
std::unique_ptr<Backend> MakeCpuBackend(const std::string& device_label, size_t device_budget_bytes,
                                        size_t host_budget_bytes);

// CUDA device `index` (train/cuda_backend.cc); throws std::runtime_error in a build without CUDA or
// when the device does not exist.
// `collectives`: "auto", "nccl" or "staged" (kernels/cuda/device_collectives.h).
std::unique_ptr<Backend> MakeCudaBackend(int index, const std::string& device_label,
                                         size_t device_budget_bytes, size_t host_budget_bytes,
                                         const std::string& collectives);

}  // namespace longctx::train
