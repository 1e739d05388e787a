// Flash attention on the GPU: bf16 inputs, float32 accumulation, log-sum-exp output, causal or
// unmasked, grouped-query attention, head_dim 64 or 128 — the kernel the long context runs on.
//
// Layouts and semantics are the CPU kernel's (kernels/cpu/attention.h), token-major:
//   q, o, dout : [q_len,  heads,    head_dim]  bf16      dq     : same shape, float32
//   k, v       : [kv_len, kv_heads, head_dim]  bf16      dk, dv : same shape, float32
//   lse        : [q_len,  heads]               float32, natural log
// Query head h reads kv head h / (heads / kv_heads). Causal needs q_len == kv_len and lets query
// i see keys 0..i. A fully masked row has lse = −inf, o = 0 and contributes no gradient.
// The gradients are float32 and added into (callers zero them first): ring attention accumulates
// the partial gradients of several steps in them, and they travel the ring with their K/V.
//
// How (FlashAttention-2, Dao 2023): the forward gives each block 64 queries of one head, keeps
// them in registers as mma fragments, and streams 64-key tiles of K and V through shared memory
// (cp.async, the next tile loading while this one is used). Scores stay in registers; the online
// softmax rescales the output accumulator per tile; P is rounded to bf16 and multiplied by V on
// the tensor cores straight from the score registers. Causal tiles above the diagonal are never
// visited. The backward recomputes P from the saved log-sum-exp instead of storing it, with
// D = rowsum(dO ∘ O) computed first; one kernel owns a 64-key tile per block and accumulates dK
// and dV over every query tile (and every query head of its kv group) in registers; a second
// kernel owns a 64-query tile and accumulates dQ. No atomics: every gradient element is written
// by exactly one thread, so the backward is deterministic (at the cost of recomputing S and dP
// in the dQ pass).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/bf16.h"

namespace longctx::cuda {

enum class AttentionMask { kNone, kCausal };

struct AttentionDims {
  int q_len;
  int kv_len;
  int heads;
  int kv_heads;
  int head_dim;  // 64 or 128
  float scale;   // usually 1/sqrt(head_dim)
};

// Throws std::invalid_argument naming the problem: non-positive sizes, heads not divisible by
// kv_heads, head_dim not 64 or 128, causal with q_len != kv_len, a non-finite scale.
void CheckAttentionDims(const AttentionDims& dims, AttentionMask mask);

// Writes o and lse.
void FlashAttentionForward(const AttentionDims& dims, AttentionMask mask, const bf16* q, const bf16* k,
                           const bf16* v, bf16* o, float* lse, cudaStream_t stream);
// The same with o in float32, unrounded: ring attention merges its partial outputs in float32, so
// only the merged result is rounded to bf16 (as a single-device forward rounds once).
void FlashAttentionForward(const AttentionDims& dims, AttentionMask mask, const bf16* q, const bf16* k,
                           const bf16* v, float* o, float* lse, cudaStream_t stream);

// Bytes of workspace the backward needs (D = rowsum(dO ∘ O): one float per query row and head).
size_t FlashAttentionBackwardWorkspaceBytes(const AttentionDims& dims);

// Adds into dq, dk, dv. o and lse are the final (merged) output and log-sum-exp of the whole
// attention these blocks are part of.
void FlashAttentionBackward(const AttentionDims& dims, AttentionMask mask, const bf16* q, const bf16* k,
                            const bf16* v, const bf16* o, const float* lse, const bf16* dout, float* dq,
                            float* dk, float* dv, void* workspace, cudaStream_t stream);

}  // namespace longctx::cuda
