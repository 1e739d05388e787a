#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/rmsnorm.h"

namespace longctx::cuda {

namespace {

constexpr int kRowThreads = 256;

// One block per token: the sum of squares is a block reduction, then every thread scales its
// channels. The reciprocal square root is taken in double (once per row) to match the CPU kernel.
__global__ void RmsNormForwardKernel(bf16* out, float* rstd, const bf16* x, const bf16* weight, int channels,
                                     float eps) {
  __shared__ float scratch[kRowThreads / kWarpSize];
  const size_t row = static_cast<size_t>(blockIdx.x) * channels;
  float sum_sq = 0.0f;
  for (int c = threadIdx.x; c < channels; c += blockDim.x) {
    const float v = Load(x + row + c);
    sum_sq += v * v;
  }
  sum_sq = BlockSum(sum_sq, scratch);
  const float r = static_cast<float>(1.0 / sqrt(static_cast<double>(sum_sq) / channels + eps));
  for (int c = threadIdx.x; c < channels; c += blockDim.x)
    Store(out + row + c, Load(weight + c) * (Load(x + row + c) * r));
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

// dx for one token per block: needs the row's Σ g ⊙ x̂ first.
__global__ void RmsNormBackwardDxKernel(bf16* dx, const bf16* dout, const bf16* x, const bf16* weight,
                                        const float* rstd, int channels) {
  __shared__ float scratch[kRowThreads / kWarpSize];
  const size_t row = static_cast<size_t>(blockIdx.x) * channels;
  const float r = rstd[blockIdx.x];
  float dot = 0.0f;
  for (int c = threadIdx.x; c < channels; c += blockDim.x)
    dot += (Load(dout + row + c) * Load(weight + c)) * (Load(x + row + c) * r);
  const float mean_dot = BlockSum(dot, scratch) / channels;
  for (int c = threadIdx.x; c < channels; c += blockDim.x) {
    const float xhat = Load(x + row + c) * r;
    const float g = Load(dout + row + c) * Load(weight + c);
    Store(dx + row + c, Load(dx + row + c) + r * (g - xhat * mean_dot));
  }
}

// partial[group][c] = Σ over the group's tokens of dout ⊙ x̂. A block covers 32 channels of one
// group: threadIdx.x walks channels (coalesced), threadIdx.y walks the group's tokens.
constexpr int kColumns = 32;
constexpr int kRowLanes = 8;
__global__ void RmsNormDweightPartialKernel(float* partial, const bf16* dout, const bf16* x,
                                            const float* rstd, int tokens, int channels) {
  __shared__ float sums[kRowLanes][kColumns + 1];
  const int c = blockIdx.x * kColumns + threadIdx.x;
  const int group = blockIdx.y;
  const int first = group * kRmsNormGroupRows;
  const int last = min(first + kRmsNormGroupRows, tokens);
  float sum = 0.0f;
  if (c < channels) {
    for (int t = first + threadIdx.y; t < last; t += kRowLanes) {
      const size_t i = static_cast<size_t>(t) * channels + c;
      sum += Load(dout + i) * (Load(x + i) * rstd[t]);
    }
  }
  sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    float total = 0.0f;
    for (int y = 0; y < kRowLanes; ++y) total += sums[y][threadIdx.x];
    partial[static_cast<size_t>(group) * channels + c] = total;
  }
}

__global__ void RmsNormDweightFinishKernel(float* dweight, const float* partial, int groups, int channels) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  float total = 0.0f;
  for (int g = 0; g < groups; ++g) total += partial[static_cast<size_t>(g) * channels + c];
  dweight[c] += total;
}

int Groups(int tokens) { return static_cast<int>(CeilDiv(tokens, kRmsNormGroupRows)); }

}  // namespace

void RmsNormForward(bf16* out, float* rstd, const bf16* x, const bf16* weight, int tokens, int channels,
                    float eps, cudaStream_t stream) {
  if (tokens <= 0 || channels <= 0) return;
  RmsNormForwardKernel<<<tokens, kRowThreads, 0, stream>>>(out, rstd, x, weight, channels, eps);
  CUDA_CHECK(cudaGetLastError());
}

size_t RmsNormBackwardWorkspaceBytes(int tokens, int channels) {
  if (tokens <= 0 || channels <= 0) return 0;
  return static_cast<size_t>(Groups(tokens)) * channels * sizeof(float);
}

void RmsNormBackward(bf16* dx, float* dweight, const bf16* dout, const bf16* x, const bf16* weight,
                     const float* rstd, int tokens, int channels, float* workspace, cudaStream_t stream) {
  if (tokens <= 0 || channels <= 0) return;
  RmsNormBackwardDxKernel<<<tokens, kRowThreads, 0, stream>>>(dx, dout, x, weight, rstd, channels);
  CUDA_CHECK(cudaGetLastError());
  const int groups = Groups(tokens);
  dim3 grid(static_cast<unsigned>(CeilDiv(channels, kColumns)), static_cast<unsigned>(groups));
  RmsNormDweightPartialKernel<<<grid, dim3(kColumns, kRowLanes), 0, stream>>>(workspace, dout, x, rstd,
                                                                              tokens, channels);
  CUDA_CHECK(cudaGetLastError());
  RmsNormDweightFinishKernel<<<static_cast<unsigned>(CeilDiv(channels, kRowThreads)), kRowThreads, 0,
                               stream>>>(dweight, workspace, groups, channels);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::cuda
