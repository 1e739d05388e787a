#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/optimizer.h"

namespace longctx::cuda {

namespace {

constexpr int kThreads = 256;

struct AdamWScalars {
  float step_size;   // lr / (1 − β1^step)
  float bias2_sqrt;  // √(1 − β2^step)
  float decay;       // 1 − lr·weight_decay
  float beta2;
  float one_minus_beta1;
  float one_minus_beta2;
  float eps;
};

__global__ void AdamWKernel(AdamWScalars s, float* params, const float* grads, float* m, float* v, int64_t n,
                            bf16* params_bf16) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = grads[i];
    float p = params[i] * s.decay;
    const float mi = m[i] + s.one_minus_beta1 * (g - m[i]);
    const float vi = s.beta2 * v[i] + s.one_minus_beta2 * (g * g);
    const float denom = sqrtf(vi) / s.bias2_sqrt + s.eps;
    p -= s.step_size * (mi / denom);
    params[i] = p;
    m[i] = mi;
    v[i] = vi;
    if (params_bf16 != nullptr) params_bf16[i] = __float2bfloat16_rn(p);
  }
}

// Pass 1: block b sums its grid-stride share in double and writes partial[b].
__global__ void SumOfSquaresPartialKernel(const float* x, int64_t n, double* partial) {
  __shared__ double scratch[kThreads / kWarpSize];
  const int64_t stride = static_cast<int64_t>(kSumOfSquaresBlocks) * kThreads;
  double sum = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const double xi = x[i];
    sum += xi * xi;
  }
  sum = BlockSum(sum, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// Pass 2: one block adds the partials in a fixed tree order.
__global__ void SumOfSquaresFinishKernel(const double* partial, double* result, bool accumulate) {
  __shared__ double scratch[kSumOfSquaresBlocks / kWarpSize];
  const double total = BlockSum(partial[threadIdx.x], scratch);
  if (threadIdx.x == 0) *result = accumulate ? *result + total : total;
}

}  // namespace

void CheckAdamW(const AdamWHyper& h, int64_t step) {
  auto bad = [](const char* name, double value, const char* want) {
    throw std::invalid_argument(std::string("AdamW ") + name + " must be " + want + ", got " +
                                std::to_string(value));
  };
  if (!(h.lr >= 0.0f) || !std::isfinite(h.lr)) bad("lr", h.lr, "a finite number >= 0");
  if (!(h.beta1 >= 0.0f && h.beta1 < 1.0f)) bad("beta1", h.beta1, "in [0, 1)");
  if (!(h.beta2 >= 0.0f && h.beta2 < 1.0f)) bad("beta2", h.beta2, "in [0, 1)");
  if (!(h.eps > 0.0f) || !std::isfinite(h.eps)) bad("eps", h.eps, "a positive finite number");
  if (!(h.weight_decay >= 0.0f) || !std::isfinite(h.weight_decay))
    bad("weight_decay", h.weight_decay, "a finite number >= 0");
  if (step < 1) bad("step", static_cast<double>(step), "at least 1 (steps count from 1)");
}

void AdamWUpdate(const AdamWHyper& h, int64_t step, float* params, const float* grads, float* m, float* v,
                 int64_t n, bf16* params_bf16, cudaStream_t stream) {
  CheckAdamW(h, step);
  if (n <= 0) return;
  const double bias1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(step));
  AdamWScalars s{static_cast<float>(h.lr / bias1),
                 static_cast<float>(std::sqrt(bias2)),
                 1.0f - h.lr * h.weight_decay,
                 h.beta2,
                 1.0f - h.beta1,
                 1.0f - h.beta2,
                 h.eps};
  AdamWKernel<<<ElementwiseBlocks(n, kThreads), kThreads, 0, stream>>>(s, params, grads, m, v, n,
                                                                       params_bf16);
  CUDA_CHECK(cudaGetLastError());
}

void SumOfSquares(const float* x, int64_t n, double* result, bool accumulate, double* workspace,
                  cudaStream_t stream) {
  SumOfSquaresPartialKernel<<<kSumOfSquaresBlocks, kThreads, 0, stream>>>(x, n < 0 ? 0 : n, workspace);
  CUDA_CHECK(cudaGetLastError());
  SumOfSquaresFinishKernel<<<1, kSumOfSquaresBlocks, 0, stream>>>(workspace, result, accumulate);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::cuda
