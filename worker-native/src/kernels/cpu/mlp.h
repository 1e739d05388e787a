// The Qwen2 feed-forward block, a SwiGLU MLP without biases:
//   gate = x·W_gateᵀ,  up = x·W_upᵀ,  act = silu(gate) ⊙ up,  out = act·W_downᵀ
// with silu(g) = g·σ(g). Its backward needs silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
// The elementwise SwiGLU is a kernel of its own; the MLP composes it with three linear layers and
// saves gate, up and act (each [tokens, intermediate]) for the backward.
#pragma once

#include <cstdint>

namespace longctx::cpu {

// act[i] = silu(gate[i]) · up[i]
void SwiGluForward(float* act, const float* gate, const float* up, int64_t n);
// Adds into dgate and dup.
void SwiGluBackward(float* dgate, float* dup, const float* dact, const float* gate, const float* up,
                    int64_t n);

struct MlpWeights {
  const float* gate;  // [intermediate, channels]
  const float* up;    // [intermediate, channels]
  const float* down;  // [channels, intermediate]
};
struct MlpGrads {
  float* gate;
  float* up;
  float* down;
};

// x [tokens, channels] → out [tokens, channels]; writes the saved gate, up, act [tokens, intermediate].
void SwiGluMlpForward(float* out, float* gate, float* up, float* act, const float* x, const MlpWeights& w,
                      int tokens, int channels, int intermediate);
// Floats of scratch SwiGluMlpBackward needs.
inline int64_t SwiGluMlpBackwardScratch(int tokens, int intermediate) {
  return int64_t{2} * tokens * intermediate;
}
// Adds into dx [tokens, channels] and the weight gradients.
void SwiGluMlpBackward(float* dx, const MlpGrads& grads, const float* dout, const float* x, const float* gate,
                       const float* up, const float* act, const MlpWeights& w, int tokens, int channels,
                       int intermediate, float* scratch);

// Plain references in T precision (the backward writes).
template <typename T>
void NaiveSwiGluForward(T* act, const T* gate, const T* up, int64_t n);
template <typename T>
void NaiveSwiGluBackward(T* dgate, T* dup, const T* dact, const T* gate, const T* up, int64_t n);
template <typename T>
void NaiveSwiGluMlpForward(T* out, const T* x, const T* w_gate, const T* w_up, const T* w_down, int tokens,
                           int channels, int intermediate);
template <typename T>
void NaiveSwiGluMlpBackward(T* dx, T* dw_gate, T* dw_up, T* dw_down, const T* dout, const T* x,
                            const T* w_gate, const T* w_up, const T* w_down, int tokens, int channels,
                            int intermediate);

}  // namespace longctx::cpu
