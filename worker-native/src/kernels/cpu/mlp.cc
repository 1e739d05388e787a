#include "kernels/cpu/mlp.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/linear.h"

namespace longctx::cpu {

void SwiGluForward(float* act, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    act[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void SwiGluBackward(float* dgate, float* dup, const float* dact, const float* gate, const float* up,
                    int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float s = 1.0f / (1.0f + std::exp(-g));
    dgate[i] += dact[i] * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] += dact[i] * g * s;
  }
}

void SwiGluMlpForward(float* out, float* gate, float* up, float* act, const float* x, const MlpWeights& w,
                      int tokens, int channels, int intermediate) {
  LinearForward(gate, x, w.gate, nullptr, tokens, channels, intermediate);
  LinearForward(up, x, w.up, nullptr, tokens, channels, intermediate);
  SwiGluForward(act, gate, up, static_cast<int64_t>(tokens) * intermediate);
  LinearForward(out, act, w.down, nullptr, tokens, intermediate, channels);
}

void SwiGluMlpBackward(float* dx, const MlpGrads& grads, const float* dout, const float* x, const float* gate,
                       const float* up, const float* act, const MlpWeights& w, int tokens, int channels,
                       int intermediate, float* scratch) {
  const int64_t n = static_cast<int64_t>(tokens) * intermediate;
  float* dact = scratch;
  float* dgate = scratch + n;
  for (int64_t i = 0; i < n; ++i) dact[i] = dgate[i] = 0.0f;
  LinearBackward(dact, grads.down, nullptr, dout, act, w.down, tokens, intermediate, channels);
  // dact becomes dup in place: each element is read once, before it is overwritten.
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], d = dact[i];
    const float s = 1.0f / (1.0f + std::exp(-g));
    dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
    dact[i] = d * g * s;
  }
  LinearBackward(dx, grads.up, nullptr, dact, x, w.up, tokens, channels, intermediate);
  LinearBackward(dx, grads.gate, nullptr, dgate, x, w.gate, tokens, channels, intermediate);
}

template <typename T>
void NaiveSwiGluForward(T* act, const T* gate, const T* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) act[i] = gate[i] / (T(1) + std::exp(-gate[i])) * up[i];
}

template <typename T>
void NaiveSwiGluBackward(T* dgate, T* dup, const T* dact, const T* gate, const T* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = T(1) / (T(1) + std::exp(-gate[i]));
    dgate[i] = dact[i] * up[i] * (s + gate[i] * s * (T(1) - s));
    dup[i] = dact[i] * gate[i] * s;
  }
}

template <typename T>
void NaiveSwiGluMlpForward(T* out, const T* x, const T* w_gate, const T* w_up, const T* w_down, int tokens,
                           int channels, int intermediate) {
  const int64_t n = static_cast<int64_t>(tokens) * intermediate;
  std::vector<T> gate(n), up(n), act(n);
  NaiveLinearForward<T>(gate.data(), x, w_gate, nullptr, tokens, channels, intermediate);
  NaiveLinearForward<T>(up.data(), x, w_up, nullptr, tokens, channels, intermediate);
  NaiveSwiGluForward<T>(act.data(), gate.data(), up.data(), n);
  NaiveLinearForward<T>(out, act.data(), w_down, nullptr, tokens, intermediate, channels);
}

template <typename T>
void NaiveSwiGluMlpBackward(T* dx, T* dw_gate, T* dw_up, T* dw_down, const T* dout, const T* x,
                            const T* w_gate, const T* w_up, const T* w_down, int tokens, int channels,
                            int intermediate) {
  const int64_t n = static_cast<int64_t>(tokens) * intermediate;
  const int64_t m = static_cast<int64_t>(tokens) * channels;
  std::vector<T> gate(n), up(n), act(n), dact(n), dgate(n), dup(n), dx_part(m);
  NaiveLinearForward<T>(gate.data(), x, w_gate, nullptr, tokens, channels, intermediate);
  NaiveLinearForward<T>(up.data(), x, w_up, nullptr, tokens, channels, intermediate);
  NaiveSwiGluForward<T>(act.data(), gate.data(), up.data(), n);
  NaiveLinearBackward<T>(dact.data(), dw_down, nullptr, dout, act.data(), w_down, tokens, intermediate,
                         channels);
  NaiveSwiGluBackward<T>(dgate.data(), dup.data(), dact.data(), gate.data(), up.data(), n);
  NaiveLinearBackward<T>(dx, dw_gate, nullptr, dgate.data(), x, w_gate, tokens, channels, intermediate);
  NaiveLinearBackward<T>(dx_part.data(), dw_up, nullptr, dup.data(), x, w_up, tokens, channels, intermediate);
  for (int64_t i = 0; i < m; ++i) dx[i] += dx_part[i];
}

template void NaiveSwiGluForward<float>(float*, const float*, const float*, int64_t);
template void NaiveSwiGluForward<double>(double*, const double*, const double*, int64_t);
template void NaiveSwiGluBackward<float>(float*, float*, const float*, const float*, const float*, int64_t);
template void NaiveSwiGluBackward<double>(double*, double*, const double*, const double*, const double*,
                                          int64_t);
template void NaiveSwiGluMlpForward<float>(float*, const float*, const float*, const float*, const float*,
                                           int, int, int);
template void NaiveSwiGluMlpForward<double>(double*, const double*, const double*, const double*,
                                            const double*, int, int, int);
template void NaiveSwiGluMlpBackward<float>(float*, float*, float*, float*, const float*, const float*,
                                            const float*, const float*, const float*, int, int, int);
template void NaiveSwiGluMlpBackward<double>(double*, double*, double*, double*, const double*, const double*,
                                             const double*, const double*, const double*, int, int, int);

}  // namespace longctx::cpu
