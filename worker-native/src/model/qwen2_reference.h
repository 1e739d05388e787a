// The plain reference Qwen2 model: the same mathematics as Qwen2Model, written straight from the
// naive reference kernels (materialised attention, full logits, triple-loop products) in T
// precision, with std::vector storage and no arena. In double it is the ground truth the float32
// model's loss and every parameter gradient are tested against, and its own gradients are tested
// against central finite differences of its loss.
#pragma once

#include <cstdint>

#include "kernels/cpu/cross_entropy.h"
#include "model/qwen2_config.h"

namespace longctx::model {

// params and grads use Qwen2Layout(config). When grads is not null, writes (does not add) the
// gradients of grad_scale · loss_sum into it. Inputs are validated as in Qwen2Model.
//
// With round_bf16 it is the naive bf16 implementation of the bf16 rule (test/cuda/reference.ts):
// every stage's arithmetic in T, its result — each activation, activation gradient and weight
// gradient — rounded to bf16 (nearest even), as a framework that keeps every tensor in bf16
// computes. The GPU trainer's whole step is held to twice this one's error.
template <typename T>
cpu::CrossEntropyResult ReferenceQwen2ForwardBackward(const Qwen2Config& config, const T* params,
                                                      const int32_t* ids, const int32_t* positions,
                                                      const int32_t* labels, int tokens, double grad_scale,
                                                      T* grads, bool round_bf16 = false);

}  // namespace longctx::model
