// RMSNorm on the GPU, as Hugging Face Qwen2RMSNorm and the CPU kernel (kernels/cpu/rmsnorm.h):
//   rstd = 1 / sqrt(mean(x²) + eps);  out = weight ⊙ (x · rstd)
//   x̂ = x·rstd,  g = dout ⊙ weight,  dx = rstd · (g − x̂ · mean(g ⊙ x̂)),  dweight = Σ_t dout ⊙ x̂
// x, out, dout, dx and weight are bf16; rstd (saved for the backward) and dweight (a weight
// gradient, accumulated over micro-batches) are float32.
//
// dweight is a sum over every token. Atomics would make it depend on scheduling; instead each
// group of kRmsNormGroupRows tokens writes a partial row to the workspace and one pass adds the
// partials in order, so the result is bitwise the same on every run.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/bf16.h"

namespace longctx::cuda {

constexpr int kRmsNormGroupRows = 64;

void RmsNormForward(bf16* out, float* rstd, const bf16* x, const bf16* weight, int tokens, int channels,
                    float eps, cudaStream_t stream);

// Bytes of workspace RmsNormBackward needs: one float partial per channel per group of tokens.
size_t RmsNormBackwardWorkspaceBytes(int tokens, int channels);

// Adds into dx [tokens, channels] (bf16) and dweight [channels] (float32).
void RmsNormBackward(bf16* dx, float* dweight, const bf16* dout, const bf16* x, const bf16* weight,
                     const float* rstd, int tokens, int channels, float* workspace, cudaStream_t stream);

}  // namespace longctx::cuda
