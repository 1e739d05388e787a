// Row operations of the attention kernels: scalar reference, AVX2 and AVX-512 versions.
//
// Bitwise agreement between the paths rests on three rules: every path evaluates Exp with the
// same sequence of correctly rounded operations (FMA where the scalar code calls std::fma); sums
// are accumulated in 16 lanes (AVX-512: one register; AVX2: two registers holding lanes 0-7 and
// 8-15; scalar: an array of 16) and reduced by the same tree; the tail of a row that does not fill
// 16 lanes is processed one element at a time by the scalar code, after the reduction.
#include "kernels/cpu/attention_rows.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__x86_64__) && defined(__AVX2__)
#include <immintrin.h>
#define LONGCTX_ROWS_X86 1
#endif

namespace longctx::cpu::rows {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kLanes = 16;

// Cody–Waite range reduction x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in a part exact in a few
// bits and a correction), e^r by the Cephes expf polynomial, 2^n built in the exponent bits.
constexpr float kExpHi = 88.3762626647949f;  // 2^n stays a normal float up to here
constexpr float kExpLo = -87.3365447504f;    // log(FLT_MIN): below it the result would be subnormal
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kExpP0 = 1.9875691500E-4f;
constexpr float kExpP1 = 1.3981999507E-3f;
constexpr float kExpP2 = 8.3334519073E-3f;
constexpr float kExpP3 = 4.1665795894E-2f;
constexpr float kExpP4 = 1.6666665459E-1f;
constexpr float kExpP5 = 5.0000001201E-1f;

// Reduces 16 partial sums in the order every path uses: lanes i and i+8, then i and i+4, i and
// i+2, i and i+1.
float ReduceSum16(const float* lanes) {
  float s8[8], s4[4];
  for (int i = 0; i < 8; ++i) s8[i] = lanes[i] + lanes[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  const float s2a = s4[0] + s4[2], s2b = s4[1] + s4[3];
  return s2a + s2b;
}

// --- scalar reference -------------------------------------------------------------------------

float MaxScalar(const float* x, int n) {
  float m = -kInf;
  for (int j = 0; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

float ExpShiftSumScalar(float* x, int n, float shift) {
  float lanes[kLanes] = {};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      x[j + l] = Exp(x[j + l] - shift);
      lanes[l] += x[j + l];
    }
  }
  float sum = ReduceSum16(lanes);
  for (; j < n; ++j) {
    x[j] = Exp(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

#ifdef LONGCTX_ROWS_X86

// --- AVX2 -------------------------------------------------------------------------------------

// Lanes outside [kExpLo, kExpHi] (and ±inf) compute garbage that the two masks then replace, so
// no clamping is needed; NaN lanes stay NaN.
inline __m256 Exp8(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(kExpLo), _CMP_LT_OQ);
  const __m256 overflow = _mm256_cmp_ps(x, _mm256_set1_ps(kExpHi), _CMP_GT_OQ);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP5));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 out = _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(bits)));
  return _mm256_blendv_ps(out, _mm256_set1_ps(kInf), overflow);
}

float MaxAvx2(const float* x, int n) {
  __m256 m = _mm256_set1_ps(-kInf);
  int j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
  float lanes[8];
  _mm256_storeu_ps(lanes, m);
  float out = MaxScalar(lanes, 8);
  return std::max(out, MaxScalar(x + j, n - j));
}

float ExpShiftSumAvx2(float* x, int n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc_lo = _mm256_setzero_ps(), acc_hi = _mm256_setzero_ps();
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const __m256 e_lo = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), s));
    const __m256 e_hi = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), s));
    _mm256_storeu_ps(x + j, e_lo);
    _mm256_storeu_ps(x + j + 8, e_hi);
    acc_lo = _mm256_add_ps(acc_lo, e_lo);
    acc_hi = _mm256_add_ps(acc_hi, e_hi);
  }
  float lanes[kLanes];
  _mm256_storeu_ps(lanes, acc_lo);
  _mm256_storeu_ps(lanes + 8, acc_hi);
  float sum = ReduceSum16(lanes);
  for (; j < n; ++j) {
    x[j] = Exp(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

// --- AVX-512 ----------------------------------------------------------------------------------

#define LONGCTX_AVX512 __attribute__((target("avx512f")))
// GCC 12 reports its own _mm512_undefined_ps() inside the intrinsics as maybe-uninitialized when
// they are used through a target attribute (GCC bug 105593); the values are always defined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// As Exp8; scalef(y, n) = y·2^n is the same single rounding as the multiplication by 2^n there.
LONGCTX_AVX512 inline __m512 Exp16(__m512 x) {
  const __mmask16 in_range = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpLo), _CMP_NLT_UQ);
  const __mmask16 overflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpHi), _CMP_GT_OQ);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP5));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512 out = _mm512_maskz_scalef_ps(in_range, y, n);
  return _mm512_mask_blend_ps(overflow, out, _mm512_set1_ps(kInf));
}

LONGCTX_AVX512 float MaxAvx512(const float* x, int n) {
  __m512 m = _mm512_set1_ps(-kInf);
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) m = _mm512_max_ps(m, _mm512_loadu_ps(x + j));
  float lanes[kLanes];
  _mm512_storeu_ps(lanes, m);
  return std::max(MaxScalar(lanes, kLanes), MaxScalar(x + j, n - j));
}

LONGCTX_AVX512 float ExpShiftSumAvx512(float* x, int n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const __m512 e = Exp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), s));
    _mm512_storeu_ps(x + j, e);
    acc = _mm512_add_ps(acc, e);
  }
  float lanes[kLanes];
  _mm512_storeu_ps(lanes, acc);
  float sum = ReduceSum16(lanes);
  for (; j < n; ++j) {
    x[j] = Exp(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

#pragma GCC diagnostic pop

#endif  // LONGCTX_ROWS_X86

}  // namespace

Isa BestIsa() {
#ifdef LONGCTX_ROWS_X86
  static const Isa best = __builtin_cpu_supports("avx512f") ? Isa::kAvx512 : Isa::kAvx2;
  return best;
#else
  return Isa::kScalar;
#endif
}

float Exp(float x) {
  if (x < kExpLo) return 0.0f;
  if (x > kExpHi) return kInf;
  if (std::isnan(x)) return x;
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(-n, kLn2Hi, x);
  r = std::fma(-n, kLn2Lo, r);
  float p = kExpP0;
  p = std::fma(p, r, kExpP1);
  p = std::fma(p, r, kExpP2);
  p = std::fma(p, r, kExpP3);
  p = std::fma(p, r, kExpP4);
  p = std::fma(p, r, kExpP5);
  const float y = std::fma(p, r * r, r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) * (1 << 23);
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return y * two_n;
}

float Max(const float* x, int n, Isa isa) {
  switch (isa) {
#ifdef LONGCTX_ROWS_X86
    case Isa::kAvx512:
      return MaxAvx512(x, n);
    case Isa::kAvx2:
      return MaxAvx2(x, n);
#endif
    default:
      return MaxScalar(x, n);
  }
}

float ExpShiftSum(float* x, int n, float shift, Isa isa) {
  switch (isa) {
#ifdef LONGCTX_ROWS_X86
    case Isa::kAvx512:
      return ExpShiftSumAvx512(x, n, shift);
    case Isa::kAvx2:
      return ExpShiftSumAvx2(x, n, shift);
#endif
    default:
      return ExpShiftSumScalar(x, n, shift);
  }
}

// Plain loops: the compiler vectorises them, and elementwise results do not depend on the width.
void SoftmaxGrad(const float* p, float* dp, int n, float delta) {
  for (int j = 0; j < n; ++j) dp[j] = p[j] * (dp[j] - delta);
}

float Dot(const float* a, const float* b, int n) {
  double sum = 0.0;  // a row of head_dim products: cheap enough to accumulate in double
  for (int j = 0; j < n; ++j) sum += static_cast<double>(a[j]) * b[j];
  return static_cast<float>(sum);
}

}  // namespace longctx::cpu::rows
