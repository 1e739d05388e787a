// Rotary position embedding on the GPU, Hugging Face "rotate_half" convention, as the CPU kernel
// (kernels/cpu/rope.h):
//   half = head_dim/2,  inv_freq[i] = theta^(−2i/head_dim),  angle[t][i] = position[t] · inv_freq[i]
//   out[i] = x[i]·cos − x[i+half]·sin,   out[i+half] = x[i+half]·cos + x[i]·sin
// Positions are explicit int32 per token (zigzag chunks are not contiguous in the sequence).
//
// Why the tables are computed in double on the device: with theta = 1e9 and positions up to 224K,
// inv_freq spans nine decades and the angle of position 224K is ~2e5 rad; a float32 product would
// be off by ~1e-2 rad. pow, the product and sincos are all double, and only cos/sin are rounded
// to float32 (tokens × half values, once per forward pass, shared by every head and layer).
// The rotation itself reads bf16, rotates in float32 and writes bf16, in place.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/bf16.h"

namespace longctx::cuda {

// cos, sin: [tokens, head_dim/2] float32; positions: device int32 [tokens] (callers validate
// them on the host: non-negative; head_dim even; theta positive).
void RopeTables(float* cos, float* sin, const int32_t* positions, int tokens, int head_dim, double theta,
                cudaStream_t stream);
// x: [tokens, heads, head_dim] bf16, rotated in place by +angle.
void RopeForward(bf16* x, const float* cos, const float* sin, int tokens, int heads, int head_dim,
                 cudaStream_t stream);
// dx: the gradient of the rotated tensor, rotated back (by −angle) in place.
void RopeBackward(bf16* dx, const float* cos, const float* sin, int tokens, int heads, int head_dim,
                  cudaStream_t stream);

}  // namespace longctx::cuda
