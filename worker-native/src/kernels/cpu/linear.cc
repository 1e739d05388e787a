#include "kernels/cpu/linear.h"

#include <cblas.h>

#include <cstring>

namespace longctx::cpu {

void LinearForward(float* out, const float* in, const float* weight, const float* bias, int tokens,
                   int in_features, int out_features) {
  if (tokens == 0) return;
  float beta = 0.0f;
  if (bias != nullptr) {
    for (int t = 0; t < tokens; ++t)
      std::memcpy(out + static_cast<size_t>(t) * out_features, bias, sizeof(float) * out_features);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tokens, out_features, in_features, 1.0f, in,
              in_features, weight, in_features, beta, out, out_features);
}

void LinearBackward(float* din, float* dweight, float* dbias, const float* dout, const float* in,
                    const float* weight, int tokens, int in_features, int out_features) {
  if (tokens == 0) return;
  if (din != nullptr) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tokens, in_features, out_features, 1.0f, dout,
                out_features, weight, in_features, 1.0f, din, in_features);
  }
  if (dweight != nullptr) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_features, in_features, tokens, 1.0f, dout,
                out_features, in, in_features, 1.0f, dweight, in_features);
  }
  if (dbias != nullptr) {
    for (int t = 0; t < tokens; ++t) {
      const float* row = dout + static_cast<size_t>(t) * out_features;
      for (int o = 0; o < out_features; ++o) dbias[o] += row[o];
    }
  }
}

template <typename T>
void NaiveLinearForward(T* out, const T* in, const T* weight, const T* bias, int tokens, int in_features,
                        int out_features) {
  for (int t = 0; t < tokens; ++t) {
    for (int o = 0; o < out_features; ++o) {
      T sum = bias != nullptr ? bias[o] : T(0);
      for (int i = 0; i < in_features; ++i) sum += in[t * in_features + i] * weight[o * in_features + i];
      out[t * out_features + o] = sum;
    }
  }
}

template <typename T>
void NaiveLinearBackward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                         int tokens, int in_features, int out_features) {
  for (int t = 0; t < tokens; ++t) {
    for (int i = 0; i < in_features; ++i) {
      T sum = 0;
      for (int o = 0; o < out_features; ++o) sum += dout[t * out_features + o] * weight[o * in_features + i];
      din[t * in_features + i] = sum;
    }
  }
  for (int o = 0; o < out_features; ++o) {
    for (int i = 0; i < in_features; ++i) {
      T sum = 0;
      for (int t = 0; t < tokens; ++t) sum += dout[t * out_features + o] * in[t * in_features + i];
      dweight[o * in_features + i] = sum;
    }
    if (dbias != nullptr) {
      T sum = 0;
      for (int t = 0; t < tokens; ++t) sum += dout[t * out_features + o];
      dbias[o] = sum;
    }
  }
}

template void NaiveLinearForward<float>(float*, const float*, const float*, const float*, int, int, int);
template void NaiveLinearForward<double>(double*, const double*, const double*, const double*, int, int, int);
template void NaiveLinearBackward<float>(float*, float*, float*, const float*, const float*, const float*,
                                         int, int, int);
template void NaiveLinearBackward<double>(double*, double*, double*, const double*, const double*,
                                          const double*, int, int, int);

}  // namespace longctx::cpu
