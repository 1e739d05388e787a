// One forward (and backward) of the Qwen2 model over this rank's tokens, the way the trainer runs it:
// weights reach the device through the ParameterStore (staged per unit under parameter offload),
// each layer keeps what the CheckpointPolicy says and the backward recomputes the rest, and each
// unit's gradient is computed into a zeroed device buffer and then added into the store's gradients
// (parameter_store.h says why). The mathematics is Qwen2Model's (model/qwen2_model.h): a loss summed
// over counted tokens and the gradients of grad_scale · that sum.
//
// The kernels are the backend's (backend.h): the same pass runs float32 on CPU and bf16 on a GPU.
//
// Under context parallelism the kernels' attention is the ring: every rank must run the same passes in the
// same order with the same policy, since each layer's attention (and each recomputed one) talks to the other
// ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/input_embeddings.h"
#include "model/model_kernels.h"
#include "model/qwen2_config.h"
#include "model/qwen2_model.h"
#include "model/sequence_attention.h"
#include "tensor/arena.h"
#include "train/checkpointing.h"
#include "train/parameter_store.h"

namespace longctx::train {

class ModelPass {
 public:
  // Keeps references: every argument must outlive the pass.
  ModelPass(const model::Qwen2Config& config, const model::Qwen2Layout& layout, std::shared_ptr<Arena> device,
            model::ModelKernels& kernels, ParameterStore& store, CheckpointPolicy policy,
            int ce_chunk_tokens);

  // Inputs are validated by the caller (CheckQwen2Inputs). Adds the gradients of
  // grad_scale · loss_sum into store.grads().
  model::StepLoss ForwardBackward(const int32_t* ids, const int32_t* positions, const int32_t* labels,
                                  int tokens, double grad_scale);
  // The loss only; one layer's activations alive at a time. `embeddings` (checked by the caller,
  // CheckEmbeddingSpans) replace the token embeddings of their spans.
  model::StepLoss Forward(const int32_t* ids, const int32_t* positions, const int32_t* labels, int tokens,
                          const std::vector<model::EmbeddingSpan>& embeddings = {});

  const CheckpointPolicy& policy() const { return policy_; }

 private:
  // A layer's weights on the device and the tensors inside them.
  struct StagedLayer {
    ParameterStore::DeviceWeights weights;
    model::LayerTensors<const void*> tensors;
  };
  StagedLayer StageLayer(int layer) const;
  // Starts staging the unit the pass needs next (ParameterStore::Prefetch; a no-op on CPU).
  void PrefetchLayer(int layer);

  const model::Qwen2Config& config_;
  const model::Qwen2Layout& layout_;
  std::shared_ptr<Arena> device_;
  model::ModelKernels& kernels_;
  ParameterStore& store_;
  CheckpointPolicy policy_;
  int ce_chunk_tokens_;
};

}  // namespace longctx::train
