// A Qwen2 causal language model (Hugging Face transformers semantics) on one device: parameters,
// gradients and activations all come from the device Arena, so its peak memory is measured, and a
// step that does not fit fails with the arena's out-of-memory error and leaves the model usable.
//
// Inputs are this rank's tokens: ids, their global positions (for RoPE; a zigzag shard's tokens
// are not contiguous) and per-token labels, already shifted (labels[t] is the token that should
// follow ids[t]; -100 = not counted). The loss is a sum over counted tokens, the gradients are of
// grad_scale · that sum, so ranks that each hold part of a sequence combine exactly: add the sums
// and counts, use grad_scale = 1 / total count everywhere.
//
// Gradients accumulate: ForwardBackward adds into the gradient buffer (gradient accumulation over
// micro-batches); ZeroGradients() starts afresh. A step that fails in its forward (bad input, out
// of memory) leaves the gradients untouched; one that fails during the backward may have added
// part of its gradients, so zero them before retrying.
//
// Deterministic: one thread of single-threaded kernels in a fixed order, so the same inputs give
// bitwise the same loss and gradients.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/cpu/cross_entropy.h"
#include "model/cpu_model_kernels.h"
#include "model/qwen2_config.h"
#include "model/qwen2_layer.h"
#include "model/sequence_attention.h"
#include "tensor/arena.h"
#include "tensor/tensor.h"

namespace longctx::model {

struct ModelOptions {
  // Tokens per cross-entropy chunk: the logits workspace is ce_chunk_tokens × vocab floats.
  int ce_chunk_tokens = 256;
  // Hugging Face initializer_range.
  double initializer_range = 0.02;
};

struct StepLoss {
  double loss_sum;  // Σ cross-entropy over counted tokens
  int64_t tokens;   // counted tokens (labels != -100)
  int64_t argmax_correct =
      0;  // of those, tokens whose label is the strict argmax of the logits (-1: not counted)
  double mean() const { return tokens > 0 ? loss_sum / static_cast<double>(tokens) : 0.0; }
};

// Hugging Face's init (see Qwen2Model::InitParameters) into a flat buffer of layout.NumParameters().
void InitQwen2Parameters(const Qwen2Layout& layout, float* params, uint64_t seed, double initializer_range);

// Throws std::invalid_argument for no tokens, an id or label outside the vocabulary, or a bad
// position; what every forward checks before it allocates anything.
void CheckQwen2Inputs(const Qwen2Config& config, const int32_t* ids, const int32_t* positions,
                      const int32_t* labels, int tokens);

class Qwen2Model {
 public:
  // Allocates the parameters and (zeroed) gradients from `arena`; the parameters are zero until
  // InitParameters or a copy into params(). `attention` defaults to LocalCausalAttention.
  Qwen2Model(const Qwen2Config& config, std::shared_ptr<Arena> arena, ModelOptions options = {},
             std::unique_ptr<SequenceAttention> attention = nullptr);

  // Hugging Face's init: matrices and embeddings ~ normal(0, initializer_range), biases 0, norm
  // weights 1. Element i of view k is value i of the counter-based stream (seed, k), so the values
  // depend only on the seed and the layout.
  void InitParameters(uint64_t seed);

  // Runs forward and backward over `tokens` tokens; adds the gradients of grad_scale · loss_sum
  // (default grad_scale: 1 / counted tokens, i.e. of the mean loss). Throws std::invalid_argument
  // for bad ids/positions/labels and OutOfMemoryError when the activations do not fit.
  StepLoss ForwardBackward(const int32_t* ids, const int32_t* positions, const int32_t* labels, int tokens,
                           std::optional<double> grad_scale = std::nullopt);
  // The loss only: keeps one layer's activations at a time.
  StepLoss Forward(const int32_t* ids, const int32_t* positions, const int32_t* labels, int tokens);

  void ZeroGradients() { grads_.Zero(); }

  const Qwen2Config& config() const { return config_; }
  const Qwen2Layout& layout() const { return layout_; }
  const ModelOptions& options() const { return options_; }
  int64_t num_parameters() const { return layout_.NumParameters(); }
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* grads() { return grads_.data(); }
  const float* grads() const { return grads_.data(); }
  Arena& arena() { return *arena_; }
  const std::shared_ptr<Arena>& shared_arena() const { return arena_; }

 private:
  LayerTensors<const void*> Weights(int layer) const;
  LayerTensors<float*> Grads(int layer);

  Qwen2Config config_;
  Qwen2Layout layout_;
  ModelOptions options_;
  std::shared_ptr<Arena> arena_;
  std::unique_ptr<SequenceAttention> attention_;
  std::unique_ptr<CpuModelKernels> kernels_;
  Tensor params_;
  Tensor grads_;
};

}  // namespace longctx::model
