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

namespace longctx::train {

enum class Offload { kNone, kOptimizer, kParamsAndOptimizer };

// 'none' | 'optimizer' | 'params+optimizer'; throws std::invalid_argument naming `field`.
Offload ParseOffload(const std::string& text, const std::string& field = "offload");
const char* OffloadName(Offload offload);

class ParameterStore {
 public:
  // Allocates `count` parameters and zeroed gradients on the device, or on the host under
  // params+optimizer. The parameters are uninitialised.
  ParameterStore(int64_t count, Offload offload, std::shared_ptr<Arena> device, std::shared_ptr<Arena> host);

  // Weights as the device sees them: a view of the resident parameters, or a staged copy that goes
  // back to the device arena when this goes away.
  class DeviceWeights {
   public:
    const float* data() const { return data_; }

   private:
    friend class ParameterStore;
    const float* data_ = nullptr;
    Tensor staging_;
  };

  // params[begin, begin + count) on the device.
  DeviceWeights Stage(int64_t begin, int64_t count) const;
  // grads[begin, begin + count) += device_gradients[0, count), through a host copy when the
  // gradients live on the host.
  void AddGradients(int64_t begin, const float* device_gradients, int64_t count);
  void ZeroGradients() { grads_.Zero(); }

  bool on_host() const { return on_host_; }
  int64_t size() const { return count_; }
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* grads() { return grads_.data(); }
  const float* grads() const { return grads_.data(); }

 private:
  int64_t count_;
  bool on_host_;
  std::shared_ptr<Arena> device_;
  std::shared_ptr<Arena> host_;
  Tensor params_;
  Tensor grads_;
};

}  // namespace longctx::train
