#include "kernels/cpu/rmsnorm.h"

#include <cmath>

namespace longctx::cpu {

void RmsNormForward(float* out, float* rstd, const float* x, const float* weight, int tokens, int channels,
                    float eps) {
  for (int t = 0; t < tokens; ++t) {
    const float* xt = x + static_cast<size_t>(t) * channels;
    float* ot = out + static_cast<size_t>(t) * channels;
    double sum_sq = 0.0;
    for (int c = 0; c < channels; ++c) sum_sq += static_cast<double>(xt[c]) * xt[c];
    const float r = static_cast<float>(1.0 / std::sqrt(sum_sq / channels + static_cast<double>(eps)));
    for (int c = 0; c < channels; ++c) ot[c] = weight[c] * (xt[c] * r);
    rstd[t] = r;
  }
}

void RmsNormBackward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                     const float* rstd, int tokens, int channels) {
  for (int t = 0; t < tokens; ++t) {
    const size_t off = static_cast<size_t>(t) * channels;
    const float* xt = x + off;
    const float* dt = dout + off;
    float* dxt = dx + off;
    const float r = rstd[t];
    double dot = 0.0;  // Σ g ⊙ x̂
    for (int c = 0; c < channels; ++c) dot += static_cast<double>(dt[c] * weight[c]) * (xt[c] * r);
    const float mean_dot = static_cast<float>(dot / channels);
    for (int c = 0; c < channels; ++c) {
      const float xhat = xt[c] * r;
      dxt[c] += r * (dt[c] * weight[c] - xhat * mean_dot);
      dweight[c] += dt[c] * xhat;
    }
  }
}

template <typename T>
void NaiveRmsNormForward(T* out, const T* x, const T* weight, int tokens, int channels, double eps) {
  for (int t = 0; t < tokens; ++t) {
    T mean_sq = 0;
    for (int c = 0; c < channels; ++c) mean_sq += x[t * channels + c] * x[t * channels + c];
    mean_sq /= channels;
    T r = T(1) / std::sqrt(mean_sq + static_cast<T>(eps));
    for (int c = 0; c < channels; ++c) out[t * channels + c] = weight[c] * x[t * channels + c] * r;
  }
}

template <typename T>
void NaiveRmsNormBackward(T* dx, T* dweight, const T* dout, const T* x, const T* weight, int tokens,
                          int channels, double eps) {
  for (int c = 0; c < channels; ++c) dweight[c] = 0;
  for (int t = 0; t < tokens; ++t) {
    const T* xt = x + t * channels;
    const T* dt = dout + t * channels;
    T mean_sq = 0;
    for (int c = 0; c < channels; ++c) mean_sq += xt[c] * xt[c];
    mean_sq /= channels;
    T r = T(1) / std::sqrt(mean_sq + static_cast<T>(eps));
    // d out_j / d x_k = weight_j (δ_jk r − x_j x_k r³ / C)
    T dot = 0;
    for (int j = 0; j < channels; ++j) dot += dt[j] * weight[j] * xt[j];
    for (int k = 0; k < channels; ++k) {
      dx[t * channels + k] = dt[k] * weight[k] * r - xt[k] * r * r * r * dot / channels;
      dweight[k] += dt[k] * xt[k] * r;
    }
  }
}

template void NaiveRmsNormForward<float>(float*, const float*, const float*, int, int, double);
template void NaiveRmsNormForward<double>(double*, const double*, const double*, int, int, double);
template void NaiveRmsNormBackward<float>(float*, float*, const float*, const float*, const float*, int, int,
                                          double);
template void NaiveRmsNormBackward<double>(double*, double*, const double*, const double*, const double*, int,
                                           int, double);

}  // namespace longctx::cpu
