#include "kernels/cpu/residual.h"

namespace longctx::cpu {

void ResidualForward(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void AddInPlace(float* acc, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
}

template <typename T>
void NaiveResidualForward(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template void NaiveResidualForward<float>(float*, const float*, const float*, int64_t);
template void NaiveResidualForward<double>(double*, const double*, const double*, int64_t);

}  // namespace longctx::cpu
