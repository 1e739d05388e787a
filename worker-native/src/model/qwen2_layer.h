// One Qwen2 decoder layer, forward and backward, on this rank's tokens:
//   h   = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = rmsnorm(x)
//   out = h + down(silu(gate(n2)) ⊙ up(n2)),                                       n2 = rmsnorm(h)
// Only q/k/v have biases (Hugging Face Qwen2).
//
// The forward keeps what the backward needs in LayerActivations. It is a pure function of the
// layer input x, the weights, the RoPE tables and the attention (every kernel is deterministic),
// so an activation-checkpointing policy can drop a layer's activations after the forward, keep x,
// and call LayerForward again before LayerBackward to get bitwise the same activations.
//
// The forward is also available in its three phases, so that a policy can keep only the costly
// middle one (under context parallelism the attention is the ring: communication and the
// quadratic part) and recompute the two cheap ones around it without running the ring again:
//   LayerForwardToAttention    n1, q, k, v (projections, biases, RoPE)
//   LayerForwardAttention      attn, lse
//   LayerForwardFromAttention  o_proj, residual, n2, MLP, residual → out
#pragma once

#include <memory>

#include "model/model_kernels.h"
#include "model/qwen2_config.h"
#include "model/sequence_attention.h"
#include "tensor/tensor.h"

namespace longctx::model {

// cos and sin [tokens, head_dim/2] (float32) for this rank's positions, shared by every layer.
struct RopeCache {
  Tensor cos;
  Tensor sin;
};
RopeCache BuildRopeCache(ModelKernels& kernels, const std::shared_ptr<Arena>& arena,
                         const Qwen2Config& config, const int32_t* positions, int tokens);

// A layer's weights as the kernels read them: views into a flat buffer of element_bytes-sized
// elements (float32 on CPU, the bf16 compute copy on a GPU).
LayerTensors<const void*> LayerWeightsAt(const void* base, size_t element_bytes, const LayerOffsets& offsets);

// Activations hold kernels.activation_type() elements; rstd and lse are float32.
struct LayerActivations {
  Tensor norm1, rstd1;   // input RMSNorm output [T, hidden] and 1/rms [T]
  Tensor q, k, v;        // after bias and RoPE: [T, heads, head_dim], [T, kv_heads, head_dim] ×2
  Tensor attn, lse;      // attention output [T, heads·head_dim], log-sum-exp [T, heads]
  Tensor mid;            // residual stream after attention [T, hidden]
  Tensor norm2, rstd2;   // post-attention RMSNorm
  Tensor gate, up, act;  // MLP [T, intermediate] each
  void Release();        // gives every tensor back to the arena
  // Gives back everything but attn and lse (what selective checkpointing keeps).
  void ReleaseAllButAttention();
  size_t bytes() const;
};

struct LayerContext {
  const Qwen2Config& config;
  std::shared_ptr<Arena> arena;
  ModelKernels& kernels;
  const RopeCache& rope;
  int tokens;
};

// x, out: [tokens, hidden]. Allocates `saved` from the arena. The three phases in order.
void LayerForward(const LayerContext& ctx, const LayerTensors<const void*>& w, const void* x, void* out,
                  LayerActivations* saved);
// Allocates and writes saved->{norm1, rstd1, q, k, v}.
void LayerForwardToAttention(const LayerContext& ctx, const LayerTensors<const void*>& w, const void* x,
                             LayerActivations* saved);
// Allocates and writes saved->{attn, lse} from saved->{q, k, v}.
void LayerForwardAttention(const LayerContext& ctx, LayerActivations* saved);
// Allocates and writes saved->{mid, norm2, rstd2, gate, up, act} and out from saved->attn.
void LayerForwardFromAttention(const LayerContext& ctx, const LayerTensors<const void*>& w, const void* x,
                               void* out, LayerActivations* saved);

// grad holds dL/d(out) on entry and dL/dx on return ([tokens, hidden]). Adds the weight gradients
// into g. Scratch comes from the arena and is released before returning.
void LayerBackward(const LayerContext& ctx, const LayerTensors<const void*>& w, const LayerTensors<float*>& g,
                   const void* x, const LayerActivations& saved, void* grad);

}  // namespace longctx::model
