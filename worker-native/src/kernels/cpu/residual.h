// The residual stream: out = a + b. The gradient of a sum flows unchanged into both summands, so
// the backward is an accumulate (dx += dout) into each.
#pragma once

#include <cstdint>

namespace longctx::cpu {

void ResidualForward(float* out, const float* a, const float* b, int64_t n);
// acc += x (the residual backward, and gradient accumulation in general).
void AddInPlace(float* acc, const float* x, int64_t n);

template <typename T>
void NaiveResidualForward(T* out, const T* a, const T* b, int64_t n);

}  // namespace longctx::cpu
