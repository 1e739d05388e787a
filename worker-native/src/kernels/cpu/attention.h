// Attention on the CPU: a blockwise FlashAttention kernel (online softmax, never materialising
// the S×S score matrix) and the naive reference it is tested against.
//
// Layouts are token-major, as the Q/K/V projections produce them, so a contiguous run of tokens
// (a zigzag chunk) is a contiguous slice of every tensor:
//   q, o, dout, dq : [q_len,  heads,    head_dim]
//   k, v, dk, dv   : [kv_len, kv_heads, head_dim]
//   lse            : [q_len,  heads]            natural-log log-sum-exp of each query row
// Grouped-query attention: query head h reads kv head h / (heads / kv_heads).
// Causal masking requires q_len == kv_len and lets query i see keys 0..i (local indices; the
// ring only uses it on a rank's own chunks, whose local order is their global order).
// A fully masked row has lse = -inf and o = 0.
#pragma once

#include <cstddef>

namespace longctx::cpu {

enum class AttentionMask { kNone, kCausal };

struct AttentionDims {
  int q_len;
  int kv_len;
  int heads;
  int kv_heads;
  int head_dim;
  float scale;  // usually 1/sqrt(head_dim)
};

// Throws std::invalid_argument naming the problem (heads not divisible by kv_heads, causal with
// q_len != kv_len, non-positive sizes).
void CheckAttentionDims(const AttentionDims& dims, AttentionMask mask);

// Floats of scratch memory the kernels need: O(block), independent of the sequence length
// squared. The caller allocates it (from the device arena, so it is counted).
size_t FlashAttentionForwardWorkspace(const AttentionDims& dims);
size_t FlashAttentionBackwardWorkspace(const AttentionDims& dims);

// Writes o and lse.
void FlashAttentionForward(const AttentionDims& dims, AttentionMask mask, const float* q, const float* k,
                           const float* v, float* o, float* lse, float* workspace);

// Adds into dq, dk and dv (callers zero them first): ring attention accumulates partial
// gradients from several steps into the same buffers. o and lse are the final (merged) output
// and log-sum-exp of the full attention these blocks are part of.
void FlashAttentionBackward(const AttentionDims& dims, AttentionMask mask, const float* q, const float* k,
                            const float* v, const float* o, const float* lse, const float* dout, float* dq,
                            float* dk, float* dv, float* workspace);

// Merges a partial result (o_part, lse_part) over other keys into (o_acc, lse_acc), in place:
//   lse = log(e^lse_acc + e^lse_part); o = e^(lse_acc-lse)·o_acc + e^(lse_part-lse)·o_part.
// Rows are q_len × heads, each head_dim wide. -inf on either side is handled (empty partials).
void MergeAttentionPartial(int rows, int head_dim, float* o_acc, float* lse_acc, const float* o_part,
                           const float* lse_part);

// The plain reference: materialises scores and probabilities, in T precision throughout
// (float for the "naive float32" error baseline, double for the ground truth).
template <typename T>
void NaiveAttentionForward(const AttentionDims& dims, AttentionMask mask, const T* q, const T* k, const T* v,
                           T* o, T* lse);
// Writes (does not add) dq, dk, dv.
template <typename T>
void NaiveAttentionBackward(const AttentionDims& dims, AttentionMask mask, const T* q, const T* k, const T* v,
                            const T* dout, T* dq, T* dk, T* dv);

}  // namespace longctx::cpu
