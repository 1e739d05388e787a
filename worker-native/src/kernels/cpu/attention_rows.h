// Row operations of the attention kernels: the elementwise work between the GEMMs (row max,
// exp with a shift, row sums, the softmax gradient) on rows of one score block.
//
// std::exp per element would cost more than the matrix products around it, so Exp is a
// polynomial approximation (about 1 ulp) that vectorises. The loops run with AVX-512 when the CPU
// has it and AVX2 otherwise; both paths do the same operations in the same order, including the
// order of the partial sums, so results are identical bit for bit whichever runs. Isa::kScalar is
// the plain loop they are tested against.
#pragma once

namespace longctx::cpu::rows {

enum class Isa { kScalar, kAvx2, kAvx512 };

// The widest instruction set this CPU supports among those compiled in.
Isa BestIsa();

// exp(x) in float32: exactly 0 for x below log(FLT_MIN) (≈ -87.34) and for -inf, +inf above
// ≈ 88.38, NaN for NaN, otherwise within about 1 ulp of the true value.
float Exp(float x);

// The maximum of x[0..n), -inf when n is 0.
float Max(const float* x, int n, Isa isa = BestIsa());

// x[j] = Exp(x[j] - shift) in place; returns the sum of the new values.
float ExpShiftSum(float* x, int n, float shift, Isa isa = BestIsa());

// ds[j] = p[j] · (dp[j] - delta), in place over dp: the softmax backward for one row.
void SoftmaxGrad(const float* p, float* dp, int n, float delta);

// Σ a[j]·b[j].
float Dot(const float* a, const float* b, int n);

}  // namespace longctx::cpu::rows
