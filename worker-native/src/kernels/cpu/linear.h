// A linear layer as torch.nn.Linear: weight is [out_features, in_features] (the Hugging Face
// storage layout, so checkpoints load without transposes) and
//   out[t] = in[t] · weightᵀ + bias.
// The products go through OpenBLAS cblas_sgemm; the backward is three of them:
//   din += dout · weight,   dweight += doutᵀ · in,   dbias += Σ_t dout[t].
#pragma once

namespace longctx::cpu {

// in [tokens, in_features] → out [tokens, out_features]; bias may be null.
void LinearForward(float* out, const float* in, const float* weight, const float* bias, int tokens,
                   int in_features, int out_features);
// Adds into din, dweight, dbias; any of them may be null (not needed).
void LinearBackward(float* din, float* dweight, float* dbias, const float* dout, const float* in,
                    const float* weight, int tokens, int in_features, int out_features);

// Plain triple loops in T precision; the backward writes din, dweight and dbias (dbias may be null).
template <typename T>
void NaiveLinearForward(T* out, const T* in, const T* weight, const T* bias, int tokens, int in_features,
                        int out_features);
template <typename T>
void NaiveLinearBackward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                         int tokens, int in_features, int out_features);

}  // namespace longctx::cpu
