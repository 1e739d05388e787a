// How a decoder layer attends over the whole sequence, whatever part of it this rank holds.
//
// The model only knows its own tokens' queries, keys and values. On one device the sequence is
// all local and attention is one causal FlashAttention call (LocalCausalAttention). Under context
// parallelism the same call becomes zigzag ring attention: keys and values travel round the ranks
// and partial results merge through their log-sum-exp. Both sit behind this interface so the
// model does not change when the attention does.
//
// Layouts are token-major (kernels/cpu/attention.h), q after RoPE:
//   q, o, dout, dq : [tokens, heads,    head_dim]
//   k, v, dk, dv   : [tokens, kv_heads, head_dim]
//   lse            : [tokens, heads]
#pragma once

#include <memory>

#include "tensor/arena.h"

namespace longctx::model {

struct AttentionShape {
  int tokens;  // this rank's tokens
  int heads;
  int kv_heads;
  int head_dim;
  float scale;  // 1/sqrt(head_dim) for Qwen2
};

class SequenceAttention {
 public:
  virtual ~SequenceAttention() = default;
  // Writes o and lse (lse is what the backward needs besides q, k, v and o).
  virtual void Forward(const AttentionShape& shape, const float* q, const float* k, const float* v, float* o,
                       float* lse) = 0;
  // Adds into dq, dk and dv (the caller zeroes them).
  virtual void Backward(const AttentionShape& shape, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* dout, float* dq, float* dk,
                        float* dv) = 0;
};

// The single-device case: every token is local and in sequence order, so query i attends to keys
// 0..i. The kernels' scratch memory comes from the device arena for the length of one call.
class LocalCausalAttention final : public SequenceAttention {
 public:
  explicit LocalCausalAttention(std::shared_ptr<Arena> arena) : arena_(std::move(arena)) {}
  void Forward(const AttentionShape& shape, const float* q, const float* k, const float* v, float* o,
               float* lse) override;
  void Backward(const AttentionShape& shape, const float* q, const float* k, const float* v, const float* o,
                const float* lse, const float* dout, float* dq, float* dk, float* dv) override;

 private:
  std::shared_ptr<Arena> arena_;
};

}  // namespace longctx::model
