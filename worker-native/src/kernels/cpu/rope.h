// Rotary position embedding, Hugging Face "rotate_half" convention (Qwen2, Llama):
//   half = head_dim/2,  inv_freq[i] = theta^(−2i/head_dim),  angle[t][i] = position[t] · inv_freq[i]
//   out[i]        = x[i]·cos − x[i+half]·sin
//   out[i+half]   = x[i+half]·cos + x[i]·sin          (i < half)
// Positions are explicit, one per token: a rank's zigzag chunks are not contiguous in the
// sequence, so the local index is not the position.
// Angles are computed in double and only then cast: with theta = 1e9 and positions near 224K,
// a float32 position · inv_freq is off by up to ~1e-2 rad (float has 24 bits; 224K needs 18).
// The backward of a rotation is the inverse rotation (its transpose), applied to the gradient.
#pragma once

#include <cstdint>

namespace longctx::cpu {

// Throws std::invalid_argument for an odd or non-positive head_dim, theta <= 0, or a negative position.
void CheckRope(const int32_t* positions, int tokens, int head_dim, double theta);

// cos, sin: [tokens, head_dim/2], shared by every head and every layer of one forward pass.
void RopeTables(float* cos, float* sin, const int32_t* positions, int tokens, int head_dim, double theta);

// x: [tokens, heads, head_dim], rotated in place.
void RopeForward(float* x, const float* cos, const float* sin, int tokens, int heads, int head_dim);
// dx: [tokens, heads, head_dim], the gradient of the rotated tensor, rotated back in place.
void RopeBackward(float* dx, const float* cos, const float* sin, int tokens, int heads, int head_dim);

// The plain reference: computes every angle itself (in double) and rotates in T precision;
// `inverse` rotates by −angle (the backward).
template <typename T>
void NaiveRope(T* out, const T* x, const int32_t* positions, int tokens, int heads, int head_dim,
               double theta, bool inverse);

}  // namespace longctx::cpu
