// RMSNorm as in Hugging Face Qwen2RMSNorm:
//   rstd = 1 / sqrt(mean(x²) + eps);  out = weight ⊙ (x · rstd)
// There is no mean subtraction and no bias. Forward saves rstd [tokens] for the backward:
//   x̂ = x·rstd,  g = dout ⊙ weight
//   dx = rstd · (g − x̂ · mean(g ⊙ x̂)),   dweight = Σ_t dout ⊙ x̂
// Sums over channels accumulate in double: a 3584-wide float sum loses digits we can keep cheaply.
#pragma once

namespace longctx::cpu {

// x, out [tokens, channels]; weight [channels]; rstd [tokens] (saved for backward).
void RmsNormForward(float* out, float* rstd, const float* x, const float* weight, int tokens, int channels,
                    float eps);
// Adds into dx [tokens, channels] and dweight [channels].
void RmsNormBackward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                     const float* rstd, int tokens, int channels);

// Plain references in T precision; the backward recomputes rstd and writes dx, dweight.
template <typename T>
void NaiveRmsNormForward(T* out, const T* x, const T* weight, int tokens, int channels, double eps);
template <typename T>
void NaiveRmsNormBackward(T* dx, T* dweight, const T* dout, const T* x, const T* weight, int tokens,
                          int channels, double eps);

}  // namespace longctx::cpu
