// Where the model's flat parameters and gradients live (offload), and how the part a computation
// needs reaches the device.
//
// Offload modes, per trainer:
//   none              parameters, gradients and the AdamW moments live on the device.
//   optimizer         the AdamW moments live in host memory and the optimizer step runs there: the
//                     owned shard of the gradients and parameters is copied to the host for the step
//                     and the updated parameters are copied back (ZeroAdamW / Trainer::Step).
//   params+optimizer  parameters and gradients live in host memory too. Each unit of weights (one
//                     decoder layer, the embedding, the final norm, the LM head) is copied into a device
//                     buffer just before its forward or backward uses it and released right after; the
//                     unit's gradients are computed into a device buffer and then added into the host
//                     gradients. The optimizer steps on the host.
// On CPU the device and the host are two Arenas with their own budgets and a copy is a memcpy: the
// honest emulation of what the CUDA backend does with H2D/D2H copies, and the device peak shows the
// bytes that moved.
//
// On a GPU (backend.h) the parameters are float32 master weights and the kernels read a bf16 compute
// copy of them, refreshed from the masters by RefreshCompute after every change. Where each lives:
//   none              masters, compute copy and gradients on the device.
//   optimizer         masters, compute copy and gradients on the device; the moments in pinned
//                     host memory, where the step runs on a host copy of the owned shard (as above).
//   params+optimizer  all of them in pinned host memory; a unit's bf16 weights are what is staged.
// On CPU the compute copy is the masters themselves. (Keeping the masters on the host under
// `optimizer` would save 4 bytes a parameter of device memory; not done yet.)
//
// Gradients are always added unit by unit: every micro-batch computes a unit's gradient into a zeroed
// device buffer, then adds that buffer into the accumulated gradients (wherever they live). Computing
// straight into the accumulator (sgemm with beta = 1) would round differently from "compute, then
// add", so doing it the same way everywhere makes the gradients bitwise identical across offload
// modes and across any number of accumulation micro-batches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tensor/arena.h"
#include "tensor/tensor.h"
#include "train/backend.h"

namespace longctx::train {

enum class Offload { kNone, kOptimizer, kParamsAndOptimizer };

// 'none' | 'optimizer' | 'params+optimizer'; throws std::invalid_argument naming `field`.
Offload ParseOffload(const std::string& text, const std::string& field = "offload");
const char* OffloadName(Offload offload);

class ParameterStore {
 public:
  // Allocates `count` parameters (and their compute copy when the backend's compute type is not
  // float32) and zeroed gradients on the device, or on the host under params+optimizer. The
  // parameters are uninitialised. Keeps a reference to `backend`.
  ParameterStore(int64_t count, Offload offload, Backend& backend);

  // Weights as the kernels read them (backend.compute_type() elements): a view of the resident
  // compute weights, or a staged copy that goes back to the device arena when this goes away.
  class DeviceWeights {
   public:
    const void* data() const { return data_; }

   private:
    friend class ParameterStore;
    const void* data_ = nullptr;
    Tensor staging_;
  };

  // params[begin, begin + count) on the device, in the compute type.
  DeviceWeights Stage(int64_t begin, int64_t count) const;
  // Under params+optimizer, on a backend whose copies overlap its work (a GPU's copy stream): starts
  // staging params[begin, begin + count) now, so that the Stage call for exactly that range finds
  // it there (the next layer's weights copy while the current layer computes). Elsewhere nothing:
  // on CPU a prefetch would only hold a second unit's staging sooner.
  void Prefetch(int64_t begin, int64_t count);
  // Rounds the master weights into the compute copy (nothing to do on CPU); after every change of
  // the parameters.
  void RefreshCompute();
  // grads[begin, begin + count) += device_gradients[0, count), through a host copy when the
  // gradients live on the host.
  void AddGradients(int64_t begin, const float* device_gradients, int64_t count);
  void ZeroGradients() { grads_.Zero(); }

  // Where the gradients (and the weights the kernels read) live: the host under params+optimizer.
  bool on_host() const { return on_host_; }
  // Where the float32 masters live (params()): with the gradients, for now.
  bool masters_on_host() const { return masters_on_host_; }
  DType compute_type() const { return backend_.compute_type(); }
  int64_t size() const { return count_; }
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* grads() { return grads_.data(); }
  const float* grads() const { return grads_.data(); }

 private:
  int64_t count_;
  bool on_host_;
  bool masters_on_host_;
  Backend& backend_;
  Tensor params_;
  Tensor compute_;  // empty when the compute type is float32 (the masters are read directly)
  Tensor grads_;
  // The unit Prefetch started staging, until Stage takes it.
  struct Prefetched {
    int64_t begin = -1;
    int64_t count = 0;
    Tensor staging;
  };
  mutable Prefetched prefetched_;
};

}  // namespace longctx::train
