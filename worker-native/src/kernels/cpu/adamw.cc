#include "kernels/cpu/adamw.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace longctx::cpu {

void CheckAdamW(const AdamWHyper& h, int64_t step) {
  auto bad = [](const char* name, double value, const char* want) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.9g", value);
    throw std::invalid_argument(std::string("AdamW ") + name + " must be " + want + ", got " + text);
  };
  if (!(h.lr >= 0.0) || !std::isfinite(h.lr)) bad("lr", h.lr, "a finite number >= 0");
  if (!(h.beta1 >= 0.0 && h.beta1 < 1.0)) bad("beta1", h.beta1, "in [0, 1)");
  if (!(h.beta2 >= 0.0 && h.beta2 < 1.0)) bad("beta2", h.beta2, "in [0, 1)");
  if (!(h.eps > 0.0)) bad("eps", h.eps, "positive");
  if (!(h.weight_decay >= 0.0) || !std::isfinite(h.weight_decay))
    bad("weight_decay", h.weight_decay, "a finite number >= 0");
  if (step < 1) bad("step", static_cast<double>(step), "at least 1 (steps count from 1)");
}

void AdamWUpdate(const AdamWHyper& h, int64_t step, float* params, const float* grads, float* m, float* v,
                 int64_t n) {
  CheckAdamW(h, step);
  const double bias1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  const float step_size = static_cast<float>(h.lr / bias1);
  const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  const float decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
  const float one_minus_beta1 = static_cast<float>(1.0 - h.beta1);
  const float beta2 = static_cast<float>(h.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - h.beta2);
  const float eps = static_cast<float>(h.eps);
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i];
    float p = params[i] * decay;
    const float mi = m[i] + one_minus_beta1 * (g - m[i]);
    const float vi = beta2 * v[i] + one_minus_beta2 * (g * g);
    const float denom = std::sqrt(vi) / bias2_sqrt + eps;
    p -= step_size * (mi / denom);
    params[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}

template <typename T>
void NaiveAdamWUpdate(const AdamWHyper& h, int64_t step, T* params, const T* grads, T* m, T* v, int64_t n) {
  CheckAdamW(h, step);
  const T lr = static_cast<T>(h.lr), b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  const T eps = static_cast<T>(h.eps), wd = static_cast<T>(h.weight_decay);
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1 - b1) * grads[i];
    v[i] = b2 * v[i] + (1 - b2) * grads[i] * grads[i];
    const T m_hat = m[i] / (1 - std::pow(b1, static_cast<T>(step)));
    const T v_hat = v[i] / (1 - std::pow(b2, static_cast<T>(step)));
    params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + wd * params[i]);
  }
}

template void NaiveAdamWUpdate<float>(const AdamWHyper&, int64_t, float*, const float*, float*, float*,
                                      int64_t);
template void NaiveAdamWUpdate<double>(const AdamWHyper&, int64_t, double*, const double*, double*, double*,
                                       int64_t);

double SumOfSquares(const float* x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

double ClipCoefficient(double total_norm, double max_norm) {
  if (max_norm <= 0.0) return 1.0;
  const double coef = max_norm / (total_norm + 1e-6);
  return coef < 1.0 ? coef : 1.0;
}

void ScaleInPlace(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace longctx::cpu
