// Activation checkpointing: which of a decoder layer's activations live from its forward until its
// backward, and which the backward recomputes.
//
// The input of every layer (the residual stream entering it, [tokens, hidden]) is always kept: the
// backward needs it, and recomputation starts from it. Beyond that, per policy:
//   none       every layer keeps all that LayerForward saved (q, k, v, attn, the norms, the MLP's gate,
//              up and act, ...): fastest, most memory.
//   full       no layer keeps anything more; the backward re-runs the layer's whole forward first
//              (under context parallelism that includes the ring: its communication runs again).
//   every-K    every K-th layer keeps everything, the others recompute as under `full`. Precisely:
//              layer l (0-based) keeps its activations when (l + 1) % K == 0, i.e. layers K-1, 2K-1,
//              3K-1, ... — the LAST layer of each group of K. The backward walks the layers from the
//              last one down, so with L = n·K layers at most n full sets are alive at once (the kept
//              ones not yet consumed, or n-1 of them plus the layer being recomputed); keeping the first
//              layer of each group instead would hold n plus the recomputed one. every-1 is `none`.
//   selective  every layer keeps its attention output and log-sum-exp — the expensive part, the ring —
//              and the backward recomputes the rest (norms, projections, RoPE, MLP) around them with
//              LayerForwardToAttention and LayerForwardFromAttention, never running the ring again.
// Recomputation runs the same deterministic kernels on bitwise the same inputs, so the gradients are
// bitwise identical under every policy; only the memory and the time differ.
#pragma once

#include <string>

namespace longctx::train {

// What one layer keeps between its forward and its backward, besides its input.
enum class LayerKeep {
  kEverything,  // all of LayerActivations: nothing to recompute
  kNothing,     // recompute the whole layer forward
  kAttention,   // attn and lse: recompute around the attention
};

class CheckpointPolicy {
 public:
  enum class Kind { kNone, kFull, kEvery, kSelective };

  CheckpointPolicy() = default;
  // 'none' | 'full' | 'selective' | 'every-K' (K a positive integer). Throws std::invalid_argument
  // naming `field` and the accepted forms.
  static CheckpointPolicy Parse(const std::string& text,
                                const std::string& field = "activationCheckpointing");

  Kind kind() const { return kind_; }
  int every() const { return every_; }  // K of every-K, else 0
  std::string name() const;             // as Parse accepts it
  LayerKeep ForLayer(int layer) const;

 private:
  Kind kind_ = Kind::kNone;
  int every_ = 0;
};

}  // namespace longctx::train
