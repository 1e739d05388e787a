// AdamW (Loshchilov & Hutter), with the exact arithmetic of torch.optim.AdamW (the optimizer the
// Hugging Face Trainer uses), so a run here and a run there agree step for step:
//   p  ← p · (1 − lr·weight_decay)                     decoupled weight decay, before the update
//   m  ← m + (1 − β1)·(g − m)                          (torch: exp_avg.lerp_(g, 1 − β1))
//   v  ← β2·v + (1 − β2)·g²
//   p  ← p − (lr / (1 − β1^step)) · m / (√v / √(1 − β2^step) + ε)
// `step` counts updates from 1.
// Weight decay is an argument rather than a global: Hugging Face does not decay biases and norm
// weights, so the caller applies it per parameter range.
//
// Gradient clipping (torch.nn.utils.clip_grad_norm_): the global norm is √(Σ g²) over every
// gradient of the model on every rank. Each rank sums its squares in double, the ranks add their
// sums (an all-reduce of one double), and every gradient is scaled by
// min(1, max_norm / (norm + 1e-6)).
#pragma once

#include <cstdint>

namespace longctx::cpu {

// Doubles, like the Python floats torch receives: derived scalars (1 − β2, lr·wd, lr/(1 − β1^t))
// are computed in double and cast to float once, as torch does, not from float-rounded βs.
struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// Throws std::invalid_argument naming a bad hyperparameter or step < 1.
void CheckAdamW(const AdamWHyper& hyper, int64_t step);

// Updates params, m (first moment) and v (second moment) in place; all are [n].
void AdamWUpdate(const AdamWHyper& hyper, int64_t step, float* params, const float* grads, float* m, float* v,
                 int64_t n);

// The textbook form, in T precision: m̂ = m/(1−β1^t), v̂ = v/(1−β2^t), p −= lr·(m̂/(√v̂+ε) + wd·p).
template <typename T>
void NaiveAdamWUpdate(const AdamWHyper& hyper, int64_t step, T* params, const T* grads, T* m, T* v,
                      int64_t n);

// Σ g² accumulated in double (the per-rank part of the global norm).
double SumOfSquares(const float* x, int64_t n);
// min(1, max_norm / (total_norm + 1e-6)); max_norm <= 0 means no clipping (returns 1).
double ClipCoefficient(double total_norm, double max_norm);
// x *= s.
void ScaleInPlace(float* x, int64_t n, float s);

}  // namespace longctx::cpu
