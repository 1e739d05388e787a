// FlashAttention on one CPU core (forward and backward), after Dao et al. (2022, 2023).
//
// The S×S score matrix never exists: queries are taken a block of rows at a time and the keys a
// block of columns at a time; the forward pass keeps, per query row, the running maximum m, the
// running softmax denominator l and an unnormalised output accumulator, rescaling them whenever
// a new block raises the maximum (the "online softmax"). The backward pass recomputes each block
// of probabilities from the saved log-sum-exp instead of storing them.
//
// Every product of blocks is one cblas_sgemm, so the arithmetic runs at BLAS speed. With grouped-
// query attention the `group` query heads that share a kv head are packed into one tall block of
// group × block_q rows (head-major), so K and V blocks are read once per group, not once per query
// head, and dK/dV sum over the group inside the GEMM. K and V are used in place (leading dimension
// kv_heads·head_dim); only the query-side block is copied, once per query block.
//
// The elementwise work between the GEMMs (row max, exp, row sums) is in attention_rows.h.
#include "kernels/cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/cpu/attention_rows.h"

namespace longctx::cpu {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Block sizes. A packed query block has about kBlockRows rows (group × block_q tokens), a key
// block kBlockK tokens: large enough that the GEMMs on them run near peak and the packing OpenBLAS
// does per call is amortised, small enough that the score blocks (rows × kBlockK floats, two of
// them in the backward pass, 1 MiB) stay in L2 between the GEMM that writes them and the GEMMs
// that read them. Chosen by measurement (bench/attention.ts); changing them changes results in the
// last bits (summation order), never correctness.
constexpr int kBlockRows = 256;
constexpr int kBlockK = 512;

// The geometry shared by forward and backward: which rows and columns a block pair covers.
struct Geometry {
  int group;                   // query heads per kv head
  int block_q;                 // query tokens per block
  int block_k;                 // key tokens per block
  int rows;                    // group × block_q: rows of a packed query block
  size_t q_stride, kv_stride;  // floats between consecutive tokens of q and of k

  explicit Geometry(const AttentionDims& d)
      : group(d.heads / d.kv_heads),
        block_q(std::min(d.q_len, std::max(1, kBlockRows / group))),
        block_k(std::min(d.kv_len, kBlockK)),
        rows(group * block_q),
        q_stride(static_cast<size_t>(d.heads) * d.head_dim),
        kv_stride(static_cast<size_t>(d.kv_heads) * d.head_dim) {}
};

// Copies the group's query-side rows of tokens [t0, t0+n) into dst, head-major: row j·n + i is token
// t0+i of query head g·group+j.
void PackRows(const float* src, const Geometry& geo, int head_dim, int g, int t0, int n, float* dst) {
  for (int j = 0; j < geo.group; ++j) {
    for (int i = 0; i < n; ++i) {
      std::memcpy(dst + (static_cast<size_t>(j) * n + i) * head_dim,
                  src + (t0 + i) * geo.q_stride + static_cast<size_t>(g * geo.group + j) * head_dim,
                  sizeof(float) * head_dim);
    }
  }
}

// Under the causal mask, sets the scores of keys after each query to -inf. Called only for the
// block pairs that straddle the diagonal; n_rows = group·nq rows of width nk (leading dim ld).
void MaskCausal(float* s, int ld, int group, int nq, int nk, int q0, int k0) {
  for (int j = 0; j < group; ++j) {
    for (int i = 0; i < nq; ++i) {
      const int first_masked = std::max(0, q0 + i + 1 - k0);
      if (first_masked >= nk) continue;
      float* row = s + (static_cast<size_t>(j) * nq + i) * ld;
      std::fill(row + first_masked, row + nk, -kInf);
    }
  }
}

// Keys a query block may look at: all of them, or under the causal mask those up to its last row.
int KeyEnd(const AttentionDims& d, AttentionMask mask, int q0, int nq) {
  return mask == AttentionMask::kCausal ? std::min(d.kv_len, q0 + nq) : d.kv_len;
}

std::string Describe(const AttentionDims& d) {
  return "q_len=" + std::to_string(d.q_len) + " kv_len=" + std::to_string(d.kv_len) +
         " heads=" + std::to_string(d.heads) + " kv_heads=" + std::to_string(d.kv_heads) +
         " head_dim=" + std::to_string(d.head_dim);
}

}  // namespace

void CheckAttentionDims(const AttentionDims& d, AttentionMask mask) {
  auto positive = [&](int value, const char* name) {
    if (value <= 0) {
      throw std::invalid_argument(std::string("attention ") + name + " must be positive, got " +
                                  std::to_string(value) + " (" + Describe(d) + ")");
    }
  };
  positive(d.q_len, "q_len");
  positive(d.kv_len, "kv_len");
  positive(d.heads, "heads");
  positive(d.kv_heads, "kv_heads");
  positive(d.head_dim, "head_dim");
  if (d.heads % d.kv_heads != 0) {
    throw std::invalid_argument("attention heads (" + std::to_string(d.heads) +
                                ") must be divisible by kv_heads (" + std::to_string(d.kv_heads) + ")");
  }
  if (!std::isfinite(d.scale)) {
    throw std::invalid_argument("attention scale must be finite, got " + std::to_string(d.scale));
  }
  if (mask == AttentionMask::kCausal && d.q_len != d.kv_len) {
    throw std::invalid_argument("causal attention needs q_len == kv_len, got q_len=" +
                                std::to_string(d.q_len) + " kv_len=" + std::to_string(d.kv_len));
  }
}

// Forward workspace: packed queries and output accumulators (rows × head_dim each), the score
// block (rows × block_k), and the running max, denominator and rescaling factor per row.
size_t FlashAttentionForwardWorkspace(const AttentionDims& d) {
  CheckAttentionDims(d, AttentionMask::kNone);
  const Geometry geo(d);
  const size_t rows = geo.rows;
  return 2 * rows * d.head_dim + rows * geo.block_k + 3 * rows;
}

// Backward workspace: packed Q, dO and dQ (rows × head_dim each), the probability and dP/dS
// blocks (rows × block_k each), and lse and rowsum(dO∘O) per row.
size_t FlashAttentionBackwardWorkspace(const AttentionDims& d) {
  CheckAttentionDims(d, AttentionMask::kNone);
  const Geometry geo(d);
  const size_t rows = geo.rows;
  return 3 * rows * d.head_dim + 2 * rows * geo.block_k + 2 * rows;
}

void FlashAttentionForward(const AttentionDims& d, AttentionMask mask, const float* q, const float* k,
                           const float* v, float* o, float* lse, float* workspace) {
  CheckAttentionDims(d, mask);
  const Geometry geo(d);
  const int D = d.head_dim;
  float* qp = workspace;
  float* acc = qp + static_cast<size_t>(geo.rows) * D;
  float* s = acc + static_cast<size_t>(geo.rows) * D;
  float* row_max = s + static_cast<size_t>(geo.rows) * geo.block_k;
  float* row_sum = row_max + geo.rows;
  float* row_alpha = row_sum + geo.rows;
  const int ld = geo.block_k;

  for (int g = 0; g < d.kv_heads; ++g) {
    const float* kg = k + static_cast<size_t>(g) * D;
    const float* vg = v + static_cast<size_t>(g) * D;
    for (int q0 = 0; q0 < d.q_len; q0 += geo.block_q) {
      const int nq = std::min(geo.block_q, d.q_len - q0);
      const int rows = geo.group * nq;
      PackRows(q, geo, D, g, q0, nq, qp);
      std::fill(acc, acc + static_cast<size_t>(rows) * D, 0.0f);
      std::fill(row_max, row_max + rows, -kInf);
      std::fill(row_sum, row_sum + rows, 0.0f);

      const int key_end = KeyEnd(d, mask, q0, nq);
      for (int k0 = 0; k0 < key_end; k0 += geo.block_k) {
        const int nk = std::min(geo.block_k, key_end - k0);
        // s = scale · Qp · Kbᵀ
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, D, d.scale, qp, D,
                    kg + k0 * geo.kv_stride, static_cast<int>(geo.kv_stride), 0.0f, s, ld);
        if (mask == AttentionMask::kCausal && k0 + nk - 1 > q0) MaskCausal(s, ld, geo.group, nq, nk, q0, k0);
        // Online softmax: shift by the new running max, rescale what was accumulated under the
        // old one by alpha = exp(old max - new max). A row that has seen only masked keys keeps
        // max -inf; it is shifted by 0 so that exp(-inf - 0) = 0 rather than exp(-inf + inf) = NaN.
        for (int r = 0; r < rows; ++r) {
          const float m_new = std::max(row_max[r], rows::Max(s + static_cast<size_t>(r) * ld, nk));
          row_alpha[r] = row_max[r] - (m_new == -kInf ? 0.0f : m_new);
          row_max[r] = m_new;
        }
        rows::ExpShiftSum(row_alpha, rows, 0.0f);
        for (int r = 0; r < rows; ++r) {
          const float shift = row_max[r] == -kInf ? 0.0f : row_max[r];
          row_sum[r] =
              row_sum[r] * row_alpha[r] + rows::ExpShiftSum(s + static_cast<size_t>(r) * ld, nk, shift);
          if (row_alpha[r] != 1.0f) {
            float* ar = acc + static_cast<size_t>(r) * D;
            for (int c = 0; c < D; ++c) ar[c] *= row_alpha[r];
          }
        }
        // acc += P · Vb
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, nk, 1.0f, s, ld,
                    vg + k0 * geo.kv_stride, static_cast<int>(geo.kv_stride), 1.0f, acc, D);
      }

      for (int j = 0; j < geo.group; ++j) {
        const int h = g * geo.group + j;
        for (int i = 0; i < nq; ++i) {
          const int r = j * nq + i;
          const float l = row_sum[r];
          const float inv = l > 0.0f ? 1.0f / l : 0.0f;
          const float* ar = acc + static_cast<size_t>(r) * D;
          float* orow = o + (q0 + i) * geo.q_stride + static_cast<size_t>(h) * D;
          for (int c = 0; c < D; ++c) orow[c] = ar[c] * inv;
          lse[static_cast<size_t>(q0 + i) * d.heads + h] = l > 0.0f ? row_max[r] + std::log(l) : -kInf;
        }
      }
    }
  }
}

void FlashAttentionBackward(const AttentionDims& d, AttentionMask mask, const float* q, const float* k,
                            const float* v, const float* o, const float* lse, const float* dout, float* dq,
                            float* dk, float* dv, float* workspace) {
  CheckAttentionDims(d, mask);
  const Geometry geo(d);
  const int D = d.head_dim;
  float* qp = workspace;
  float* dop = qp + static_cast<size_t>(geo.rows) * D;
  float* dqp = dop + static_cast<size_t>(geo.rows) * D;
  float* p = dqp + static_cast<size_t>(geo.rows) * D;
  float* ds = p + static_cast<size_t>(geo.rows) * geo.block_k;
  float* row_lse = ds + static_cast<size_t>(geo.rows) * geo.block_k;
  float* row_delta = row_lse + geo.rows;
  const int ld = geo.block_k;
  const int kv_ld = static_cast<int>(geo.kv_stride);

  for (int g = 0; g < d.kv_heads; ++g) {
    const float* kg = k + static_cast<size_t>(g) * D;
    const float* vg = v + static_cast<size_t>(g) * D;
    float* dkg = dk + static_cast<size_t>(g) * D;
    float* dvg = dv + static_cast<size_t>(g) * D;
    for (int q0 = 0; q0 < d.q_len; q0 += geo.block_q) {
      const int nq = std::min(geo.block_q, d.q_len - q0);
      const int rows = geo.group * nq;
      PackRows(q, geo, D, g, q0, nq, qp);
      PackRows(dout, geo, D, g, q0, nq, dop);
      std::fill(dqp, dqp + static_cast<size_t>(rows) * D, 0.0f);
      for (int j = 0; j < geo.group; ++j) {
        const int h = g * geo.group + j;
        for (int i = 0; i < nq; ++i) {
          const int r = j * nq + i;
          const size_t at = (q0 + i) * geo.q_stride + static_cast<size_t>(h) * D;
          // delta = rowsum(dO∘O) = rowsum(P∘dP): the softmax Jacobian's correction term.
          row_delta[r] = rows::Dot(dout + at, o + at, D);
          // A row with no visible key has lse = -inf and P = 0; shifting by +inf gives exactly 0.
          const float l = lse[static_cast<size_t>(q0 + i) * d.heads + h];
          row_lse[r] = l == -kInf ? kInf : l;
        }
      }

      const int key_end = KeyEnd(d, mask, q0, nq);
      for (int k0 = 0; k0 < key_end; k0 += geo.block_k) {
        const int nk = std::min(geo.block_k, key_end - k0);
        const float* kb = kg + k0 * geo.kv_stride;
        const float* vb = vg + k0 * geo.kv_stride;
        // P = exp(scale · Qp · Kbᵀ − lse)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, D, d.scale, qp, D, kb, kv_ld, 0.0f, p,
                    ld);
        if (mask == AttentionMask::kCausal && k0 + nk - 1 > q0) MaskCausal(p, ld, geo.group, nq, nk, q0, k0);
        for (int r = 0; r < rows; ++r) rows::ExpShiftSum(p + static_cast<size_t>(r) * ld, nk, row_lse[r]);
        // dP = dOp · Vbᵀ, then dS = P∘(dP − delta) in place
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, D, 1.0f, dop, D, vb, kv_ld, 0.0f, ds,
                    ld);
        for (int r = 0; r < rows; ++r) {
          rows::SoftmaxGrad(p + static_cast<size_t>(r) * ld, ds + static_cast<size_t>(r) * ld, nk,
                            row_delta[r]);
        }
        // dVb += Pᵀ · dOp;  dKb += scale · dSᵀ · Qp;  dQp += scale · dS · Kb
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, rows, 1.0f, p, ld, dop, D, 1.0f,
                    dvg + k0 * geo.kv_stride, kv_ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, rows, d.scale, ds, ld, qp, D, 1.0f,
                    dkg + k0 * geo.kv_stride, kv_ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, nk, d.scale, ds, ld, kb, kv_ld, 1.0f,
                    dqp, D);
      }

      for (int j = 0; j < geo.group; ++j) {
        const int h = g * geo.group + j;
        for (int i = 0; i < nq; ++i) {
          const float* src = dqp + static_cast<size_t>(j * nq + i) * D;
          float* dst = dq + (q0 + i) * geo.q_stride + static_cast<size_t>(h) * D;
          for (int c = 0; c < D; ++c) dst[c] += src[c];
        }
      }
    }
  }
}

// Both sides in log space: lse = max + log(e^(a-max) + e^(b-max)). An empty side (lse -inf) has
// weight exactly 0 and its output is never read (it may be uninitialised), so merging with an
// empty partial is the identity bit for bit, and two empty sides stay empty (o 0, lse -inf).
void MergeAttentionPartial(int rows, int head_dim, float* o_acc, float* lse_acc, const float* o_part,
                           const float* lse_part) {
  if (rows < 0 || head_dim <= 0) {
    throw std::invalid_argument("MergeAttentionPartial: rows must be >= 0 and head_dim positive, got rows=" +
                                std::to_string(rows) + " head_dim=" + std::to_string(head_dim));
  }
  for (int r = 0; r < rows; ++r) {
    const float a = lse_acc[r], b = lse_part[r];
    float* oa = o_acc + static_cast<size_t>(r) * head_dim;
    const float* ob = o_part + static_cast<size_t>(r) * head_dim;
    if (b == -kInf) {
      if (a == -kInf) std::fill(oa, oa + head_dim, 0.0f);
      continue;
    }
    if (a == -kInf) {
      std::copy(ob, ob + head_dim, oa);
      lse_acc[r] = b;
      continue;
    }
    const float m = std::max(a, b);
    const float ea = std::exp(a - m), eb = std::exp(b - m);
    const float sum = ea + eb;
    const float wa = ea / sum, wb = eb / sum;
    for (int c = 0; c < head_dim; ++c) oa[c] = wa * oa[c] + wb * ob[c];
    lse_acc[r] = m + std::log(sum);
  }
}

}  // namespace longctx::cpu
