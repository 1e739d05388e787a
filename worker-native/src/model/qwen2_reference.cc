#include "model/qwen2_reference.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/residual.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace longctx::model {

namespace {

template <typename T>
struct ReferenceLayerSaved {
  std::vector<T> x, norm1, q, k, v, attn, mid, norm2;
};

template <typename T>
void Add(std::vector<T>& acc, const std::vector<T>& x) {
  for (size_t i = 0; i < x.size(); ++i) acc[i] += x[i];
}

// x rounded to float32, then to bf16 (nearest even): the storage of a naive bf16 implementation.
double ToBf16(double x) {
  const float f = static_cast<float>(x);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return x;  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  float r;
  std::memcpy(&r, &bits, sizeof(r));
  return r;
}

// Rounds a stage's result when the reference plays the naive bf16 implementation.
template <typename T>
struct StageRounding {
  bool on;
  void operator()(T* x, size_t n) const {
    if (on)
      for (size_t i = 0; i < n; ++i) x[i] = static_cast<T>(ToBf16(static_cast<double>(x[i])));
  }
  void operator()(std::vector<T>& x) const { (*this)(x.data(), x.size()); }
};

}  // namespace

template <typename T>
cpu::CrossEntropyResult ReferenceQwen2ForwardBackward(const Qwen2Config& c, const T* params,
                                                      const int32_t* ids, const int32_t* positions,
                                                      const int32_t* labels, int tokens, double grad_scale,
                                                      T* grads, bool round_bf16) {
  const Qwen2Layout layout(c);
  const StageRounding<T> R{round_bf16};
  if (tokens <= 0)
    throw std::invalid_argument("a step needs at least one token, got " + std::to_string(tokens));
  cpu::CheckTokenIds(ids, tokens, c.vocab_size, "ids");
  cpu::CheckRope(positions, tokens, c.head_dim(), c.rope_theta);
  cpu::CheckLabels(labels, tokens, c.vocab_size);
  const int N = tokens, C = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  const int H = c.num_attention_heads, KH = c.num_key_value_heads, D = c.head_dim(), V = c.vocab_size;
  const double eps = c.rms_norm_eps;
  const size_t NC = static_cast<size_t>(N) * C;
  const cpu::AttentionDims dims{N, N, H, KH, D, static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)))};
  const auto causal = cpu::AttentionMask::kCausal;

  // Forward, keeping each layer's inputs to the naive backwards (which recompute what they need).
  std::vector<T> x(NC);
  cpu::NaiveEmbeddingForward<T>(x.data(), ids, params + layout.embed_tokens(), N, C);
  R(x);
  std::vector<ReferenceLayerSaved<T>> saved(c.num_hidden_layers);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const auto w = LayerTensors<const T*>::At(params, layout.layer(l));
    ReferenceLayerSaved<T>& s = saved[l];
    s.x = x;
    s.norm1.resize(NC);
    cpu::NaiveRmsNormForward<T>(s.norm1.data(), x.data(), w.input_norm, N, C, eps);
    R(s.norm1);
    std::vector<T> q(static_cast<size_t>(N) * Q), k(static_cast<size_t>(N) * KV);
    s.v.resize(static_cast<size_t>(N) * KV);
    cpu::NaiveLinearForward<T>(q.data(), s.norm1.data(), w.q_weight, w.q_bias, N, C, Q);
    cpu::NaiveLinearForward<T>(k.data(), s.norm1.data(), w.k_weight, w.k_bias, N, C, KV);
    cpu::NaiveLinearForward<T>(s.v.data(), s.norm1.data(), w.v_weight, w.v_bias, N, C, KV);
    R(q);
    R(k);
    R(s.v);
    s.q.resize(q.size());
    s.k.resize(k.size());
    cpu::NaiveRope<T>(s.q.data(), q.data(), positions, N, H, D, c.rope_theta, false);
    cpu::NaiveRope<T>(s.k.data(), k.data(), positions, N, KH, D, c.rope_theta, false);
    R(s.q);
    R(s.k);
    s.attn.resize(q.size());
    std::vector<T> lse(static_cast<size_t>(N) * H);
    cpu::NaiveAttentionForward<T>(dims, causal, s.q.data(), s.k.data(), s.v.data(), s.attn.data(),
                                  lse.data());
    R(s.attn);
    std::vector<T> proj(NC);
    cpu::NaiveLinearForward<T>(proj.data(), s.attn.data(), w.o_weight, nullptr, N, Q, C);
    R(proj);
    s.mid.resize(NC);
    cpu::NaiveResidualForward<T>(s.mid.data(), x.data(), proj.data(), NC);
    R(s.mid);
    s.norm2.resize(NC);
    cpu::NaiveRmsNormForward<T>(s.norm2.data(), s.mid.data(), w.post_attention_norm, N, C, eps);
    R(s.norm2);
    std::vector<T> mlp(NC);
    cpu::NaiveSwiGluMlpForward<T>(mlp.data(), s.norm2.data(), w.gate_weight, w.up_weight, w.down_weight, N, C,
                                  I);
    R(mlp);
    cpu::NaiveResidualForward<T>(x.data(), s.mid.data(), mlp.data(), NC);
    R(x);
  }
  std::vector<T> final_norm(NC);
  cpu::NaiveRmsNormForward<T>(final_norm.data(), x.data(), params + layout.final_norm(), N, C, eps);
  R(final_norm);
  if (grads == nullptr) {
    return cpu::NaiveCrossEntropy<T>(final_norm.data(), params + layout.lm_head(), labels, N, C, V,
                                     grad_scale, nullptr, nullptr);
  }

  // Backward. Every naive backward writes, so each result lands in a fresh vector and is added.
  for (int64_t i = 0; i < layout.NumParameters(); ++i) grads[i] = 0;
  std::vector<T> dfinal(NC), dlm_head(static_cast<size_t>(V) * C);
  const cpu::CrossEntropyResult result =
      cpu::NaiveCrossEntropy<T>(final_norm.data(), params + layout.lm_head(), labels, N, C, V, grad_scale,
                                dfinal.data(), dlm_head.data());
  R(dfinal);
  for (size_t i = 0; i < dlm_head.size(); ++i) grads[layout.lm_head() + i] += dlm_head[i];
  std::vector<T> grad(NC);
  cpu::NaiveRmsNormBackward<T>(grad.data(), grads + layout.final_norm(), dfinal.data(), x.data(),
                               params + layout.final_norm(), N, C, eps);
  R(grad);
  for (int l = c.num_hidden_layers - 1; l >= 0; --l) {
    const auto w = LayerTensors<const T*>::At(params, layout.layer(l));
    const auto g = LayerTensors<T*>::At(grads, layout.layer(l));
    const ReferenceLayerSaved<T>& s = saved[l];
    // out = mid + mlp(norm2(mid))
    std::vector<T> dnorm2(NC), dmid(NC);
    cpu::NaiveSwiGluMlpBackward<T>(dnorm2.data(), g.gate_weight, g.up_weight, g.down_weight, grad.data(),
                                   s.norm2.data(), w.gate_weight, w.up_weight, w.down_weight, N, C, I);
    R(dnorm2);
    cpu::NaiveRmsNormBackward<T>(dmid.data(), g.post_attention_norm, dnorm2.data(), s.mid.data(),
                                 w.post_attention_norm, N, C, eps);
    Add(dmid, grad);
    R(dmid);
    // mid = x + o_proj(attention(rope(q), rope(k), v))
    std::vector<T> dattn(s.attn.size());
    cpu::NaiveLinearBackward<T>(dattn.data(), g.o_weight, nullptr, dmid.data(), s.attn.data(), w.o_weight, N,
                                Q, C);
    R(dattn);
    std::vector<T> dq_rot(s.q.size()), dk_rot(s.k.size()), dv(s.v.size()), dq(s.q.size()), dk(s.k.size());
    cpu::NaiveAttentionBackward<T>(dims, causal, s.q.data(), s.k.data(), s.v.data(), dattn.data(),
                                   dq_rot.data(), dk_rot.data(), dv.data());
    R(dv);
    cpu::NaiveRope<T>(dq.data(), dq_rot.data(), positions, N, H, D, c.rope_theta, true);
    cpu::NaiveRope<T>(dk.data(), dk_rot.data(), positions, N, KH, D, c.rope_theta, true);
    R(dq);
    R(dk);
    std::vector<T> dnorm1(NC), part(NC);
    cpu::NaiveLinearBackward<T>(dnorm1.data(), g.q_weight, g.q_bias, dq.data(), s.norm1.data(), w.q_weight, N,
                                C, Q);
    cpu::NaiveLinearBackward<T>(part.data(), g.k_weight, g.k_bias, dk.data(), s.norm1.data(), w.k_weight, N,
                                C, KV);
    Add(dnorm1, part);
    cpu::NaiveLinearBackward<T>(part.data(), g.v_weight, g.v_bias, dv.data(), s.norm1.data(), w.v_weight, N,
                                C, KV);
    Add(dnorm1, part);
    R(dnorm1);
    cpu::NaiveRmsNormBackward<T>(grad.data(), g.input_norm, dnorm1.data(), s.x.data(), w.input_norm, N, C,
                                 eps);
    Add(grad, dmid);
    R(grad);
  }
  std::vector<T> dembed(static_cast<size_t>(V) * C);
  cpu::NaiveEmbeddingBackward<T>(dembed.data(), grad.data(), ids, N, V, C);
  for (size_t i = 0; i < dembed.size(); ++i) grads[layout.embed_tokens() + i] += dembed[i];
  R(grads, static_cast<size_t>(layout.NumParameters()));
  return result;
}

template cpu::CrossEntropyResult ReferenceQwen2ForwardBackward<float>(const Qwen2Config&, const float*,
                                                                      const int32_t*, const int32_t*,
                                                                      const int32_t*, int, double, float*,
                                                                      bool);
template cpu::CrossEntropyResult ReferenceQwen2ForwardBackward<double>(const Qwen2Config&, const double*,
                                                                       const int32_t*, const int32_t*,
                                                                       const int32_t*, int, double, double*,
                                                                       bool);

}  // namespace longctx::model
