// The naive attention reference: materialises the q_len × kv_len scores of one head, softmaxes
// them, and multiplies by V — plain loops, no blocking, in T precision throughout. Instantiated for
// double (the ground truth the flash kernel is tested against) and float (the error baseline: a
// flash kernel should be about as accurate as the obvious float32 implementation).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/attention.h"

namespace longctx::cpu {

namespace {

// Number of keys query row i may see.
int VisibleKeys(const AttentionDims& d, AttentionMask mask, int i) {
  return mask == AttentionMask::kCausal ? i + 1 : d.kv_len;
}

// scores[i][j] = scale · q_i·k_j for the visible keys, -inf for the masked ones.
template <typename T>
void Scores(const AttentionDims& d, AttentionMask mask, const T* q, const T* k, int h, std::vector<T>& s) {
  const int group = d.heads / d.kv_heads, g = h / group, D = d.head_dim;
  const T scale = static_cast<T>(d.scale);
  for (int i = 0; i < d.q_len; ++i) {
    const T* qi = q + (static_cast<size_t>(i) * d.heads + h) * D;
    const int visible = VisibleKeys(d, mask, i);
    for (int j = 0; j < d.kv_len; ++j) {
      T dot = 0;
      const T* kj = k + (static_cast<size_t>(j) * d.kv_heads + g) * D;
      for (int c = 0; c < D; ++c) dot += qi[c] * kj[c];
      s[static_cast<size_t>(i) * d.kv_len + j] =
          j < visible ? scale * dot : -std::numeric_limits<T>::infinity();
    }
  }
}

}  // namespace

template <typename T>
void NaiveAttentionForward(const AttentionDims& d, AttentionMask mask, const T* q, const T* k, const T* v,
                           T* o, T* lse) {
  CheckAttentionDims(d, mask);
  const int group = d.heads / d.kv_heads, D = d.head_dim;
  std::vector<T> s(static_cast<size_t>(d.q_len) * d.kv_len);
  for (int h = 0; h < d.heads; ++h) {
    const int g = h / group;
    Scores(d, mask, q, k, h, s);
    for (int i = 0; i < d.q_len; ++i) {
      T* si = s.data() + static_cast<size_t>(i) * d.kv_len;
      T* oi = o + (static_cast<size_t>(i) * d.heads + h) * D;
      T m = -std::numeric_limits<T>::infinity();
      for (int j = 0; j < d.kv_len; ++j) m = std::max(m, si[j]);
      for (int c = 0; c < D; ++c) oi[c] = 0;
      if (m == -std::numeric_limits<T>::infinity()) {  // no visible key
        lse[static_cast<size_t>(i) * d.heads + h] = m;
        continue;
      }
      T l = 0;
      for (int j = 0; j < d.kv_len; ++j) {
        si[j] = std::exp(si[j] - m);
        l += si[j];
      }
      for (int j = 0; j < d.kv_len; ++j) {
        const T p = si[j] / l;
        const T* vj = v + (static_cast<size_t>(j) * d.kv_heads + g) * D;
        for (int c = 0; c < D; ++c) oi[c] += p * vj[c];
      }
      lse[static_cast<size_t>(i) * d.heads + h] = m + std::log(l);
    }
  }
}

// With P = softmax(S), O = P·V and the upstream gradient dO:
//   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P∘(dP − rowsum(P∘dP)),  dQ = scale·dS·K,  dK = scale·dSᵀ·Q.
template <typename T>
void NaiveAttentionBackward(const AttentionDims& d, AttentionMask mask, const T* q, const T* k, const T* v,
                            const T* dout, T* dq, T* dk, T* dv) {
  CheckAttentionDims(d, mask);
  const int group = d.heads / d.kv_heads, D = d.head_dim;
  const T scale = static_cast<T>(d.scale);
  const size_t q_size = static_cast<size_t>(d.q_len) * d.heads * D;
  const size_t kv_size = static_cast<size_t>(d.kv_len) * d.kv_heads * D;
  for (size_t x = 0; x < q_size; ++x) dq[x] = 0;
  for (size_t x = 0; x < kv_size; ++x) dk[x] = dv[x] = 0;
  std::vector<T> p(static_cast<size_t>(d.q_len) * d.kv_len), dp(p.size());
  for (int h = 0; h < d.heads; ++h) {
    const int g = h / group;
    Scores(d, mask, q, k, h, p);
    for (int i = 0; i < d.q_len; ++i) {
      T* pi = p.data() + static_cast<size_t>(i) * d.kv_len;
      T* dpi = dp.data() + static_cast<size_t>(i) * d.kv_len;
      const T* doi = dout + (static_cast<size_t>(i) * d.heads + h) * D;
      T m = -std::numeric_limits<T>::infinity();
      for (int j = 0; j < d.kv_len; ++j) m = std::max(m, pi[j]);
      T l = 0;
      for (int j = 0; j < d.kv_len; ++j) {
        pi[j] = m == -std::numeric_limits<T>::infinity() ? 0 : std::exp(pi[j] - m);
        l += pi[j];
      }
      T row = 0;  // rowsum(P∘dP)
      for (int j = 0; j < d.kv_len; ++j) {
        if (l > 0) pi[j] /= l;
        const T* vj = v + (static_cast<size_t>(j) * d.kv_heads + g) * D;
        T dot = 0;
        for (int c = 0; c < D; ++c) dot += doi[c] * vj[c];
        dpi[j] = dot;
        row += pi[j] * dot;
      }
      for (int j = 0; j < d.kv_len; ++j) dpi[j] = pi[j] * (dpi[j] - row);  // dS
    }
    for (int i = 0; i < d.q_len; ++i) {
      const T* pi = p.data() + static_cast<size_t>(i) * d.kv_len;
      const T* dsi = dp.data() + static_cast<size_t>(i) * d.kv_len;
      const T* qi = q + (static_cast<size_t>(i) * d.heads + h) * D;
      const T* doi = dout + (static_cast<size_t>(i) * d.heads + h) * D;
      T* dqi = dq + (static_cast<size_t>(i) * d.heads + h) * D;
      for (int j = 0; j < d.kv_len; ++j) {
        const size_t kv_row = (static_cast<size_t>(j) * d.kv_heads + g) * D;
        const T ds = scale * dsi[j];
        for (int c = 0; c < D; ++c) {
          dqi[c] += ds * k[kv_row + c];
          dk[kv_row + c] += ds * qi[c];
          dv[kv_row + c] += pi[j] * doi[c];
        }
      }
    }
  }
}

template void NaiveAttentionForward<float>(const AttentionDims&, AttentionMask, const float*, const float*,
                                           const float*, float*, float*);
template void NaiveAttentionForward<double>(const AttentionDims&, AttentionMask, const double*, const double*,
                                            const double*, double*, double*);
template void NaiveAttentionBackward<float>(const AttentionDims&, AttentionMask, const float*, const float*,
                                            const float*, const float*, float*, float*, float*);
template void NaiveAttentionBackward<double>(const AttentionDims&, AttentionMask, const double*,
                                             const double*, const double*, const double*, double*, double*,
                                             double*);

}  // namespace longctx::cpu
