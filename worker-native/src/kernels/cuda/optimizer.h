// The optimizer on the GPU: AdamW over float32 master weights, and the global gradient norm.
//
// Mixed precision: the forward and backward read a bf16 copy of the weights, but the update is
// applied to float32 master weights (a 1e-5 learning-rate step is below bf16's resolution for
// most weights and would round away). AdamWUpdate writes the refreshed bf16 copy in the same pass.
//
// The arithmetic is that of the CPU kernel (kernels/cpu/adamw.h), itself torch.optim.AdamW's:
//   p  ← p · (1 − lr·weight_decay)                     decoupled weight decay
//   m  ← m + (1 − β1)·(g − m)
//   v  ← β2·v + (1 − β2)·g²
//   p  ← p − (lr / (1 − β1^step)) · m / (√v / √(1 − β2^step) + ε)
// with the bias corrections computed in double on the host.
//
// The global norm √(Σ g²) is summed in double with a fixed partition (kSumOfSquaresBlocks blocks
// whatever the device) and a fixed reduction order, so every run and every GPU model gives the
// same bits; ranks then all-reduce their sums.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/bf16.h"

namespace longctx::cuda {

struct AdamWHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

// Throws std::invalid_argument naming a bad hyperparameter or step < 1.
void CheckAdamW(const AdamWHyper& hyper, int64_t step);

// Updates params, m and v ([n] float32) in place from grads ([n] float32); when params_bf16 is not
// null, also writes the rounded bf16 copy of the new params there.
void AdamWUpdate(const AdamWHyper& hyper, int64_t step, float* params, const float* grads, float* m, float* v,
                 int64_t n, bf16* params_bf16, cudaStream_t stream);

constexpr int kSumOfSquaresBlocks = 512;
inline size_t SumOfSquaresWorkspaceBytes() { return kSumOfSquaresBlocks * sizeof(double); }

// *result (one device double) = Σ x² (or += when accumulate, to sum several tensors).
void SumOfSquares(const float* x, int64_t n, double* result, bool accumulate, double* workspace,
                  cudaStream_t stream);

}  // namespace longctx::cuda
