// Elementwise kernels of the Qwen2 block on the GPU: precision conversions, the residual stream
// and the SwiGLU activation. bf16 in and out, arithmetic in float32 (one rounding per output).
//
// Semantics mirror the CPU kernels (kernels/cpu/residual.h, kernels/cpu/mlp.h):
//   residual:  out = a + b;  its backward is an accumulate acc += x into each summand's gradient
//   SwiGLU:    act = silu(gate) · up,  silu(g) = g·σ(g),  silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
// Backward kernels add into their gradient outputs, as on the CPU.
// Every function enqueues on `stream` and returns at once; pointers are device memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/bf16.h"

namespace longctx::cuda {

// Master weights (float32) → compute copy (bf16), and back for inspection.
void FloatToBf16(bf16* out, const float* in, int64_t n, cudaStream_t stream);
void Bf16ToFloat(float* out, const bf16* in, int64_t n, cudaStream_t stream);

void ResidualForward(bf16* out, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream);
// acc += x
void AddInPlace(bf16* acc, const bf16* x, int64_t n, cudaStream_t stream);
void AddInPlace(float* acc, const float* x, int64_t n, cudaStream_t stream);
// acc += x, a bf16 gradient into a float32 accumulator (gradient accumulation over micro-batches).
void AddInPlace(float* acc, const bf16* x, int64_t n, cudaStream_t stream);
// x *= s (gradient clipping).
void ScaleInPlace(float* x, int64_t n, float s, cudaStream_t stream);

void SwiGluForward(bf16* act, const bf16* gate, const bf16* up, int64_t n, cudaStream_t stream);
// Adds into dgate and dup.
void SwiGluBackward(bf16* dgate, bf16* dup, const bf16* dact, const bf16* gate, const bf16* up, int64_t n,
                    cudaStream_t stream);

}  // namespace longctx::cuda
