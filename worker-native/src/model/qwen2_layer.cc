#include "model/qwen2_layer.h"

#include <cmath>

namespace longctx::model {

RopeCache BuildRopeCache(ModelKernels& kernels, const std::shared_ptr<Arena>& arena,
                         const Qwen2Config& config, const int32_t* positions, int tokens) {
  const int half = config.head_dim() / 2;
  RopeCache cache{Tensor::Empty(arena, {tokens, half}), Tensor::Empty(arena, {tokens, half})};
  kernels.RopeTables(cache.cos.data(), cache.sin.data(), positions, tokens, config.head_dim(),
                     config.rope_theta);
  return cache;
}

LayerTensors<const void*> LayerWeightsAt(const void* base, size_t element_bytes, const LayerOffsets& o) {
  const char* b = static_cast<const char*>(base);
  auto at = [&](int64_t offset) -> const void* { return b + static_cast<size_t>(offset) * element_bytes; };
  return {at(o.q_weight),  at(o.q_bias),      at(o.k_weight),   at(o.k_bias),
          at(o.v_weight),  at(o.v_bias),      at(o.o_weight),   at(o.gate_weight),
          at(o.up_weight), at(o.down_weight), at(o.input_norm), at(o.post_attention_norm)};
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

// An activation-typed tensor (float32 on CPU, bf16 on a GPU).
Tensor Act(const LayerContext& ctx, Shape shape) {
  return Tensor::Empty(ctx.arena, std::move(shape), ctx.kernels.activation_type());
}
Tensor ActZeros(const LayerContext& ctx, Shape shape) {
  return Tensor::Zeros(ctx.arena, std::move(shape), ctx.kernels.activation_type());
}
}  // namespace

void LayerForward(const LayerContext& ctx, const LayerTensors<const void*>& w, const void* x, void* out,
                  LayerActivations* s) {
  LayerForwardToAttention(ctx, w, x, s);
  LayerForwardAttention(ctx, s);
  LayerForwardFromAttention(ctx, w, x, out, s);
}

void LayerForwardToAttention(const LayerContext& ctx, const LayerTensors<const void*>& w, const void* x,
                             LayerActivations* s) {
  const Qwen2Config& c = ctx.config;
  const int T = ctx.tokens, C = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim();
  const float eps = static_cast<float>(c.rms_norm_eps);
  ModelKernels& k = ctx.kernels;

  s->norm1 = Act(ctx, {T, C});
  s->rstd1 = Tensor::Empty(ctx.arena, {T});
  k.RmsNormForward(s->norm1.raw(), s->rstd1.data(), x, w.input_norm, T, C, eps);

  s->q = Act(ctx, {T, c.num_attention_heads, c.head_dim()});
  s->k = Act(ctx, {T, c.num_key_value_heads, c.head_dim()});
  s->v = Act(ctx, {T, c.num_key_value_heads, c.head_dim()});
  k.LinearForward(s->q.raw(), s->norm1.raw(), w.q_weight, w.q_bias, T, C, Q);
  k.LinearForward(s->k.raw(), s->norm1.raw(), w.k_weight, w.k_bias, T, C, KV);
  k.LinearForward(s->v.raw(), s->norm1.raw(), w.v_weight, w.v_bias, T, C, KV);
  k.RopeForward(s->q.raw(), ctx.rope.cos.data(), ctx.rope.sin.data(), T, c.num_attention_heads, c.head_dim());
  k.RopeForward(s->k.raw(), ctx.rope.cos.data(), ctx.rope.sin.data(), T, c.num_key_value_heads, c.head_dim());
}

void LayerForwardAttention(const LayerContext& ctx, LayerActivations* s) {
  const Qwen2Config& c = ctx.config;
  s->attn = Act(ctx, {ctx.tokens, c.q_dim()});
  s->lse = Tensor::Empty(ctx.arena, {ctx.tokens, c.num_attention_heads});
  ctx.kernels.AttentionForward(ShapeOf(ctx), s->q.raw(), s->k.raw(), s->v.raw(), s->attn.raw(),
                               s->lse.data());
}

void LayerForwardFromAttention(const LayerContext& ctx, const LayerTensors<const void*>& w, const void* x,
                               void* out, LayerActivations* s) {
  const Qwen2Config& c = ctx.config;
  const int T = ctx.tokens, C = c.hidden_size, Q = c.q_dim(), I = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  ModelKernels& k = ctx.kernels;

  // mid = x + o_proj(attn), computed in place.
  s->mid = Act(ctx, {T, C});
  k.LinearForward(s->mid.raw(), s->attn.raw(), w.o_weight, nullptr, T, Q, C);
  k.AddInPlace(s->mid.raw(), x, static_cast<int64_t>(T) * C);

  s->norm2 = Act(ctx, {T, C});
  s->rstd2 = Tensor::Empty(ctx.arena, {T});
  k.RmsNormForward(s->norm2.raw(), s->rstd2.data(), s->mid.raw(), w.post_attention_norm, T, C, eps);

  s->gate = Act(ctx, {T, I});
  s->up = Act(ctx, {T, I});
  s->act = Act(ctx, {T, I});
  k.MlpForward(out, s->gate.raw(), s->up.raw(), s->act.raw(), s->norm2.raw(),
               {w.gate_weight, w.up_weight, w.down_weight}, T, C, I);
  k.AddInPlace(out, s->mid.raw(), static_cast<int64_t>(T) * C);
}

void LayerBackward(const LayerContext& ctx, const LayerTensors<const void*>& w, const LayerTensors<float*>& g,
                   const void* x, const LayerActivations& s, void* grad) {
  const Qwen2Config& c = ctx.config;
  const int T = ctx.tokens, C = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  ModelKernels& k = ctx.kernels;

  // MLP: grad (= dL/d out) flows into the MLP and, unchanged, along the residual to mid.
  Tensor dnorm = ActZeros(ctx, {T, C});
  k.MlpBackward(dnorm.raw(), {g.gate_weight, g.up_weight, g.down_weight}, grad, s.norm2.raw(), s.gate.raw(),
                s.up.raw(), s.act.raw(), {w.gate_weight, w.up_weight, w.down_weight}, T, C, I);
  // grad becomes dL/d mid.
  k.RmsNormBackward(grad, g.post_attention_norm, dnorm.raw(), s.mid.raw(), w.post_attention_norm,
                    s.rstd2.data(), T, C);

  // Attention: o_proj, the attention itself, RoPE (inverse rotation), then q/k/v projections.
  Tensor dq = ActZeros(ctx, {T, Q});
  Tensor dk = ActZeros(ctx, {T, KV});
  Tensor dv = ActZeros(ctx, {T, KV});
  {
    Tensor dattn = ActZeros(ctx, {T, Q});
    k.LinearBackward(dattn.raw(), g.o_weight, nullptr, grad, s.attn.raw(), w.o_weight, T, Q, C);
    k.AttentionBackward(ShapeOf(ctx), s.q.raw(), s.k.raw(), s.v.raw(), s.attn.raw(), s.lse.data(),
                        dattn.raw(), dq.raw(), dk.raw(), dv.raw());
  }
  k.RopeBackward(dq.raw(), ctx.rope.cos.data(), ctx.rope.sin.data(), T, c.num_attention_heads, c.head_dim());
  k.RopeBackward(dk.raw(), ctx.rope.cos.data(), ctx.rope.sin.data(), T, c.num_key_value_heads, c.head_dim());
  dnorm.Zero();
  k.LinearBackward(dnorm.raw(), g.q_weight, g.q_bias, dq.raw(), s.norm1.raw(), w.q_weight, T, C, Q);
  k.LinearBackward(dnorm.raw(), g.k_weight, g.k_bias, dk.raw(), s.norm1.raw(), w.k_weight, T, C, KV);
  k.LinearBackward(dnorm.raw(), g.v_weight, g.v_bias, dv.raw(), s.norm1.raw(), w.v_weight, T, C, KV);
  // grad becomes dL/dx: the residual path plus the input norm's backward.
  k.RmsNormBackward(grad, g.input_norm, dnorm.raw(), x, w.input_norm, s.rstd1.data(), T, C);
}

}  // namespace longctx::model
