// The kernels a Qwen2 forward and backward runs, as one table, so that the same layer, model-pass
// and trainer code runs on either backend (llm.c's habit: one training loop, kernels swapped):
//   CpuModelKernels   float32 everywhere (kernels/cpu), attention through a SequenceAttention (the
//                     local kernel or the zigzag ring).
//   CudaModelKernels  bf16 activations and compute weights, float32 accumulation and float32
//                     weight gradients (kernels/cuda), on one CUDA stream (train/cuda_backend.h).
//
// Pointers are device memory of the backend's arena. `Act` pointers (void*) hold activation_type()
// elements: activations, activation gradients and the compute copy of the weights. Weight
// gradients, RMSNorm's rstd, RoPE's tables and attention's lse are float32 on both backends.
// Token ids, positions and labels are host arrays (the backend uploads what its kernels need).
//
// Accumulation follows the CPU kernels: "adds into" outputs are added to, the rest written. Each
// method's scratch comes from the arena and is released before it returns, so both backends count
// the same kinds of bytes at the same points of a step.
#pragma once

#include <cstdint>

#include "model/sequence_attention.h"
#include "tensor/tensor.h"

namespace longctx::model {

struct LossSum {
  double loss_sum;  // Σ cross-entropy over counted tokens
  int64_t count;    // counted tokens (labels != -100)
  // Counted tokens whose label is the strict argmax of the logits (NIAH's scoring rule), or -1
  // where the backend does not count them (the CUDA cross-entropy does not yet).
  int64_t argmax_correct = -1;
};

struct MlpWeightPtrs {
  const void* gate;  // [intermediate, channels]
  const void* up;    // [intermediate, channels]
  const void* down;  // [channels, intermediate]
};
struct MlpGradPtrs {
  float* gate;
  float* up;
  float* down;
};

class ModelKernels {
 public:
  virtual ~ModelKernels() = default;

  // The element type of activations and compute weights.
  virtual DType activation_type() const = 0;

  // cos, sin [tokens, head_dim/2] for host `positions`.
  virtual void RopeTables(float* cos, float* sin, const int32_t* positions, int tokens, int head_dim,
                          double theta) = 0;
  virtual void EmbeddingForward(void* out, const int32_t* ids, const void* table, int tokens,
                                int channels) = 0;
  // out rows [first, first + rows) = host float32 `values` [rows, channels], in the activation type:
  // input embeddings replacing the lookup at marked tokens (model/input_embeddings.h).
  virtual void SpliceRows(void* out, const float* values, int first, int rows, int channels) = 0;
  // dtable [vocab, channels] += scatter of dout by ids.
  virtual void EmbeddingBackward(float* dtable, const void* dout, const int32_t* ids, int tokens,
                                 int channels) = 0;
  virtual void RmsNormForward(void* out, float* rstd, const void* x, const void* weight, int tokens,
                              int channels, float eps) = 0;
  // Adds into dx and dweight.
  virtual void RmsNormBackward(void* dx, float* dweight, const void* dout, const void* x, const void* weight,
                               const float* rstd, int tokens, int channels) = 0;
  // out [tokens, out_features] = in · weightᵀ + bias (bias may be null).
  virtual void LinearForward(void* out, const void* in, const void* weight, const void* bias, int tokens,
                             int in_features, int out_features) = 0;
  // Adds into din, dweight and dbias (dbias may be null).
  virtual void LinearBackward(void* din, float* dweight, float* dbias, const void* dout, const void* in,
                              const void* weight, int tokens, int in_features, int out_features) = 0;
  // x [tokens, heads, head_dim], rotated in place (forward) or back (backward).
  virtual void RopeForward(void* x, const float* cos, const float* sin, int tokens, int heads,
                           int head_dim) = 0;
  virtual void RopeBackward(void* dx, const float* cos, const float* sin, int tokens, int heads,
                            int head_dim) = 0;
  // acc += x
  virtual void AddInPlace(void* acc, const void* x, int64_t n) = 0;
  // Writes out, gate, up and act (act = silu(gate) ⊙ up, out = act · downᵀ).
  virtual void MlpForward(void* out, void* gate, void* up, void* act, const void* x, const MlpWeightPtrs& w,
                          int tokens, int channels, int intermediate) = 0;
  // Adds into dx and the weight gradients.
  virtual void MlpBackward(void* dx, const MlpGradPtrs& g, const void* dout, const void* x, const void* gate,
                           const void* up, const void* act, const MlpWeightPtrs& w, int tokens, int channels,
                           int intermediate) = 0;
  // The sequence's attention for this rank's tokens (q after RoPE). Backward: dq, dk, dv are zero on
  // entry and hold the gradients on return.
  virtual void AttentionForward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                                void* o, float* lse) = 0;
  virtual void AttentionBackward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                                 const void* o, const float* lse, const void* dout, void* dq, void* dk,
                                 void* dv) = 0;
  // The LM head and cross-entropy, chunk_tokens at a time. With dhidden and dweight (both or
  // neither) adds the gradients of grad_scale · loss_sum into them.
  virtual LossSum CrossEntropy(const void* hidden, const void* weight, const int32_t* labels, int tokens,
                               int channels, int vocab, int chunk_tokens, float grad_scale, void* dhidden,
                               float* dweight) = 0;
};

}  // namespace longctx::model
