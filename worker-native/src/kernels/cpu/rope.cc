#include "kernels/cpu/rope.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace longctx::cpu {

void CheckRope(const int32_t* positions, int tokens, int head_dim, double theta) {
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw std::invalid_argument("rope head_dim must be positive and even, got " + std::to_string(head_dim));
  if (!(theta > 0.0) || !std::isfinite(theta))
    throw std::invalid_argument("rope_theta must be a positive finite number, got " + std::to_string(theta));
  for (int t = 0; t < tokens; ++t) {
    if (positions[t] < 0)
      throw std::invalid_argument("positions[" + std::to_string(t) + "] = " + std::to_string(positions[t]) +
                                  " is negative");
  }
}

void RopeTables(float* cos, float* sin, const int32_t* positions, int tokens, int head_dim, double theta) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double inv_freq = std::pow(theta, -2.0 * i / head_dim);
    for (int t = 0; t < tokens; ++t) {
      const double angle = static_cast<double>(positions[t]) * inv_freq;
      cos[static_cast<size_t>(t) * half + i] = static_cast<float>(std::cos(angle));
      sin[static_cast<size_t>(t) * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

namespace {
// Rotates every head of every token by +angle (sign = 1) or −angle (sign = −1).
void Rotate(float* x, const float* cos, const float* sin, int tokens, int heads, int head_dim, float sign) {
  const int half = head_dim / 2;
  for (int t = 0; t < tokens; ++t) {
    const float* c = cos + static_cast<size_t>(t) * half;
    const float* s = sin + static_cast<size_t>(t) * half;
    for (int h = 0; h < heads; ++h) {
      float* v = x + (static_cast<size_t>(t) * heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half], si = sign * s[i];
        v[i] = a * c[i] - b * si;
        v[i + half] = b * c[i] + a * si;
      }
    }
  }
}
}  // namespace

void RopeForward(float* x, const float* cos, const float* sin, int tokens, int heads, int head_dim) {
  Rotate(x, cos, sin, tokens, heads, head_dim, 1.0f);
}

void RopeBackward(float* dx, const float* cos, const float* sin, int tokens, int heads, int head_dim) {
  Rotate(dx, cos, sin, tokens, heads, head_dim, -1.0f);
}

template <typename T>
void NaiveRope(T* out, const T* x, const int32_t* positions, int tokens, int heads, int head_dim,
               double theta, bool inverse) {
  const int half = head_dim / 2;
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      const T* in = x + (t * heads + h) * head_dim;
      T* o = out + (t * heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const double angle = positions[t] * std::pow(theta, -2.0 * i / head_dim);
        const T c = static_cast<T>(std::cos(angle));
        const T s = static_cast<T>(inverse ? -std::sin(angle) : std::sin(angle));
        o[i] = in[i] * c - in[i + half] * s;
        o[i + half] = in[i + half] * c + in[i] * s;
      }
    }
  }
}

template void NaiveRope<float>(float*, const float*, const int32_t*, int, int, int, double, bool);
template void NaiveRope<double>(double*, const double*, const int32_t*, int, int, int, double, bool);

}  // namespace longctx::cpu
