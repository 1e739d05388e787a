#include "model/sequence_attention.h"

#include "kernels/cpu/attention.h"
#include "tensor/tensor.h"

namespace longctx::model {

namespace {
cpu::AttentionDims Dims(const AttentionShape& s) {
  return {s.tokens, s.tokens, s.heads, s.kv_heads, s.head_dim, s.scale};
}
}  // namespace

void LocalCausalAttention::Forward(const AttentionShape& shape, const float* q, const float* k,
                                   const float* v, float* o, float* lse) {
  const cpu::AttentionDims dims = Dims(shape);
  cpu::CheckAttentionDims(dims, cpu::AttentionMask::kCausal);
  Tensor workspace = Tensor::Empty(arena_, {static_cast<int64_t>(cpu::FlashAttentionForwardWorkspace(dims))});
  cpu::FlashAttentionForward(dims, cpu::AttentionMask::kCausal, q, k, v, o, lse, workspace.data());
}

void LocalCausalAttention::Backward(const AttentionShape& shape, const float* q, const float* k,
                                    const float* v, const float* o, const float* lse, const float* dout,
                                    float* dq, float* dk, float* dv) {
  const cpu::AttentionDims dims = Dims(shape);
  cpu::CheckAttentionDims(dims, cpu::AttentionMask::kCausal);
  Tensor workspace =
      Tensor::Empty(arena_, {static_cast<int64_t>(cpu::FlashAttentionBackwardWorkspace(dims))});
  cpu::FlashAttentionBackward(dims, cpu::AttentionMask::kCausal, q, k, v, o, lse, dout, dq, dk, dv,
                              workspace.data());
}

}  // namespace longctx::model
