// The few training kernels the Qwen2 step needs beyond the block's (rmsnorm, rope, elementwise,
// gemm, flash attention, cross-entropy): the token embedding, a linear layer's bias, and a fill.
// Their references are the CPU kernels (kernels/cpu/embedding.h, kernels/cpu/linear.h); the
// whole-step GPU test (test/cuda/trainer.test.ts) checks them through the trainer.
//
// Determinism: the two reductions (the embedding's scatter-add and the bias gradient's column sum)
// give every output element to one thread that walks the tokens in order, so no atomics and the
// same bits on every run. They are O(tokens) per thread: fine for the embedding (channels threads
// in parallel) and the bias (out_features threads), both small next to the GEMMs.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/bf16.h"

namespace longctx::cuda {

// out[t] = table[ids[t]] ([tokens, channels] bf16); ids are device int32, validated by the caller.
void EmbeddingForward(bf16* out, const int32_t* ids, const bf16* table, int tokens, int channels,
                      cudaStream_t stream);
// dtable[ids[t]] += dout[t] (float32 accumulation into the float32 weight gradient).
void EmbeddingBackward(float* dtable, const bf16* dout, const int32_t* ids, int tokens, int channels,
                       cudaStream_t stream);
// out[t, n] = bf16(acc[t, n] + bias[n]) (bias may be null): a linear layer's output rounded once.
void BiasRound(bf16* out, const float* acc, const bf16* bias, int tokens, int features, cudaStream_t stream);
// dbias[n] += Σ_t dout[t, n], summed in float32 in token order.
void ColumnSumAdd(float* dbias, const bf16* dout, int tokens, int features, cudaStream_t stream);
// Ring attention's merge of a partial result into the running one, per row (a query token and
// head), in float32 (ARCHITECTURE.md): lse = log(e^lse + e^part_lse),
// o = e^(lse_old − lse)·o + e^(part_lse − lse)·part_o. o and part_o [rows, head_dim] float32.
void MergeAttentionPartial(int rows, int head_dim, float* o, float* lse, const float* part_o,
                           const float* part_lse, cudaStream_t stream);
// x[0, n) = value (cudaMemset cannot write -0.0f, the gather's identity).
void Fill(float* x, int64_t n, float value, cudaStream_t stream);

}  // namespace longctx::cuda
