#include "model/qwen2_layer.h"

#include <cmath>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/residual.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace longctx::model {

RopeCache BuildRopeCache(const std::shared_ptr<Arena>& arena, const Qwen2Config& config,
                         const int32_t* positions, int tokens) {
  const int half = config.head_dim() / 2;
  RopeCache cache{Tensor::Empty(arena, {tokens, half}), Tensor::Empty(arena, {tokens, half})};
  cpu::RopeTables(cache.cos.data(), cache.sin.data(), positions, tokens, config.head_dim(),
                  config.rope_theta);
  return cache;
}

void LayerActivations::Release() {
  for (Tensor* t : {&norm1, &rstd1, &q, &k, &v, &attn, &lse, &mid, &norm2, &rstd2, &gate, &up, &act})
    t->Release();
}

void LayerActivations::ReleaseAllButAttention() {
  for (Tensor* t : {&norm1, &rstd1, &q, &k, &v, &mid, &norm2, &rstd2, &gate, &up, &act}) t->Release();
}

size_t LayerActivations::bytes() const {
  size_t total = 0;
  for (const Tensor* t : {&norm1, &rstd1, &q, &k, &v, &attn, &lse, &mid, &norm2, &rstd2, &gate, &up, &act})
    total += t->bytes();
  return total;
}

namespace {
AttentionShape ShapeOf(const LayerContext& ctx) {
  const Qwen2Config& c = ctx.config;
  return {ctx.tokens, c.num_attention_heads, c.num_key_value_heads, c.head_dim(),
          1.0f / std::sqrt(static_cast<float>(c.head_dim()))};
}
}  // namespace

void LayerForward(const LayerContext& ctx, const LayerTensors<const float*>& w, const float* x, float* out,
                  LayerActivations* s) {
  LayerForwardToAttention(ctx, w, x, s);
  LayerForwardAttention(ctx, s);
  LayerForwardFromAttention(ctx, w, x, out, s);
}

void LayerForwardToAttention(const LayerContext& ctx, const LayerTensors<const float*>& w, const float* x,
                             LayerActivations* s) {
  const Qwen2Config& c = ctx.config;
  const int T = ctx.tokens, C = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim();
  const float eps = static_cast<float>(c.rms_norm_eps);
  const auto& arena = ctx.arena;

  s->norm1 = Tensor::Empty(arena, {T, C});
  s->rstd1 = Tensor::Empty(arena, {T});
  cpu::RmsNormForward(s->norm1.data(), s->rstd1.data(), x, w.input_norm, T, C, eps);

  s->q = Tensor::Empty(arena, {T, c.num_attention_heads, c.head_dim()});
  s->k = Tensor::Empty(arena, {T, c.num_key_value_heads, c.head_dim()});
  s->v = Tensor::Empty(arena, {T, c.num_key_value_heads, c.head_dim()});
  cpu::LinearForward(s->q.data(), s->norm1.data(), w.q_weight, w.q_bias, T, C, Q);
  cpu::LinearForward(s->k.data(), s->norm1.data(), w.k_weight, w.k_bias, T, C, KV);
  cpu::LinearForward(s->v.data(), s->norm1.data(), w.v_weight, w.v_bias, T, C, KV);
  cpu::RopeForward(s->q.data(), ctx.rope.cos.data(), ctx.rope.sin.data(), T, c.num_attention_heads,
                   c.head_dim());
  cpu::RopeForward(s->k.data(), ctx.rope.cos.data(), ctx.rope.sin.data(), T, c.num_key_value_heads,
                   c.head_dim());
}

void LayerForwardAttention(const LayerContext& ctx, LayerActivations* s) {
  const Qwen2Config& c = ctx.config;
  s->attn = Tensor::Empty(ctx.arena, {ctx.tokens, c.q_dim()});
  s->lse = Tensor::Empty(ctx.arena, {ctx.tokens, c.num_attention_heads});
  ctx.attention.Forward(ShapeOf(ctx), s->q.data(), s->k.data(), s->v.data(), s->attn.data(), s->lse.data());
}

void LayerForwardFromAttention(const LayerContext& ctx, const LayerTensors<const float*>& w, const float* x,
                               float* out, LayerActivations* s) {
  const Qwen2Config& c = ctx.config;
  const int T = ctx.tokens, C = c.hidden_size, Q = c.q_dim(), I = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const auto& arena = ctx.arena;

  // mid = x + o_proj(attn), computed in place.
  s->mid = Tensor::Empty(arena, {T, C});
  cpu::LinearForward(s->mid.data(), s->attn.data(), w.o_weight, nullptr, T, Q, C);
  cpu::AddInPlace(s->mid.data(), x, static_cast<int64_t>(T) * C);

  s->norm2 = Tensor::Empty(arena, {T, C});
  s->rstd2 = Tensor::Empty(arena, {T});
  cpu::RmsNormForward(s->norm2.data(), s->rstd2.data(), s->mid.data(), w.post_attention_norm, T, C, eps);

  s->gate = Tensor::Empty(arena, {T, I});
  s->up = Tensor::Empty(arena, {T, I});
  s->act = Tensor::Empty(arena, {T, I});
  cpu::SwiGluMlpForward(out, s->gate.data(), s->up.data(), s->act.data(), s->norm2.data(),
                        {w.gate_weight, w.up_weight, w.down_weight}, T, C, I);
  cpu::AddInPlace(out, s->mid.data(), static_cast<int64_t>(T) * C);
}

void LayerBackward(const LayerContext& ctx, const LayerTensors<const float*>& w,
                   const LayerTensors<float*>& g, const float* x, const LayerActivations& s, float* grad) {
  const Qwen2Config& c = ctx.config;
  const int T = ctx.tokens, C = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  const auto& arena = ctx.arena;

  // MLP: grad (= dL/d out) flows into the MLP and, unchanged, along the residual to mid.
  Tensor dnorm = Tensor::Zeros(arena, {T, C});
  {
    Tensor scratch = Tensor::Empty(arena, {cpu::SwiGluMlpBackwardScratch(T, I)});
    cpu::SwiGluMlpBackward(dnorm.data(), {g.gate_weight, g.up_weight, g.down_weight}, grad, s.norm2.data(),
                           s.gate.data(), s.up.data(), s.act.data(),
                           {w.gate_weight, w.up_weight, w.down_weight}, T, C, I, scratch.data());
  }
  // grad becomes dL/d mid.
  cpu::RmsNormBackward(grad, g.post_attention_norm, dnorm.data(), s.mid.data(), w.post_attention_norm,
                       s.rstd2.data(), T, C);

  // Attention: o_proj, the attention itself, RoPE (inverse rotation), then q/k/v projections.
  Tensor dq = Tensor::Zeros(arena, {T, Q});
  Tensor dk = Tensor::Zeros(arena, {T, KV});
  Tensor dv = Tensor::Zeros(arena, {T, KV});
  {
    Tensor dattn = Tensor::Zeros(arena, {T, Q});
    cpu::LinearBackward(dattn.data(), g.o_weight, nullptr, grad, s.attn.data(), w.o_weight, T, Q, C);
    ctx.attention.Backward(ShapeOf(ctx), s.q.data(), s.k.data(), s.v.data(), s.attn.data(), s.lse.data(),
                           dattn.data(), dq.data(), dk.data(), dv.data());
  }
  cpu::RopeBackward(dq.data(), ctx.rope.cos.data(), ctx.rope.sin.data(), T, c.num_attention_heads,
                    c.head_dim());
  cpu::RopeBackward(dk.data(), ctx.rope.cos.data(), ctx.rope.sin.data(), T, c.num_key_value_heads,
                    c.head_dim());
  dnorm.Zero();
  cpu::LinearBackward(dnorm.data(), g.q_weight, g.q_bias, dq.data(), s.norm1.data(), w.q_weight, T, C, Q);
  cpu::LinearBackward(dnorm.data(), g.k_weight, g.k_bias, dk.data(), s.norm1.data(), w.k_weight, T, C, KV);
  cpu::LinearBackward(dnorm.data(), g.v_weight, g.v_bias, dv.data(), s.norm1.data(), w.v_weight, T, C, KV);
  // grad becomes dL/dx: the residual path plus the input norm's backward.
  cpu::RmsNormBackward(grad, g.input_norm, dnorm.data(), x, w.input_norm, s.rstd1.data(), T, C);
}

}  // namespace longctx::model
