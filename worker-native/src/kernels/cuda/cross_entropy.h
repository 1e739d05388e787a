// The language-model head and softmax cross-entropy on the GPU, a chunk of tokens at a time, as
// the CPU kernel (kernels/cpu/cross_entropy.h):
//   logits = hidden[t] · weightᵀ,   loss_t = logsumexp(logits) − logits[y]
//   dlogits = grad_scale · (softmax(logits) − onehot(y))
// Tokens labelled kIgnoreIndex (−100) add nothing to the loss, the count or the gradients.
// The full logits [tokens × vocab] never exist: per chunk, a GEMM writes chunk × vocab float32
// logits, one block per row turns its row into the loss and into bf16 dlogits, and two GEMMs fold
// dlogits into dhidden and dweight. The workspace is O(chunk_tokens × vocab).
//
// Precision: hidden and weight are bf16, the logits and the softmax are float32, the per-token
// losses are summed in double; dhidden (an activation gradient) is bf16, dweight (a weight
// gradient) float32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/bf16.h"
#include "kernels/cuda/gemm.h"

namespace longctx::cuda {

constexpr int32_t kIgnoreIndex = -100;

struct CrossEntropyResult {
  double loss_sum;  // Σ loss_t over tokens whose label is not ignored
  int64_t count;    // how many such tokens
};

size_t ChunkedCrossEntropyWorkspaceBytes(int tokens, int vocab, int chunk_tokens);

// hidden [tokens, channels], weight [vocab, channels], labels [tokens] (device; validated by the
// caller: each in [0, vocab) or kIgnoreIndex — an invalid label makes the loss NaN rather than
// reading out of bounds). When dhidden / dweight are not null, adds the gradients of
// grad_scale · loss_sum into them. Waits for `stream` to return the loss.
CrossEntropyResult ChunkedCrossEntropy(const bf16* hidden, const bf16* weight, const int32_t* labels,
                                       int tokens, int channels, int vocab, int chunk_tokens,
                                       float grad_scale, bf16* dhidden, float* dweight, void* workspace,
                                       cudaStream_t stream, GemmBackend backend = GemmBackend::kAuto);

}  // namespace longctx::cuda
