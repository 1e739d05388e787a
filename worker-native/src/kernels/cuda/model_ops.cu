#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/model_ops.h"

namespace longctx::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void EmbeddingForwardKernel(bf16* out, const int32_t* ids, const bf16* table, int tokens,
                                       int channels) {
  const int64_t n = static_cast<int64_t>(tokens) * channels;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t t = i / channels, c = i % channels;
    out[i] = table[static_cast<int64_t>(ids[t]) * channels + c];
  }
}

// One thread per channel walks the tokens in order: deterministic, no atomics.
__global__ void EmbeddingBackwardKernel(float* dtable, const bf16* dout, const int32_t* ids, int tokens,
                                        int channels) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  for (int t = 0; t < tokens; ++t)
    dtable[static_cast<int64_t>(ids[t]) * channels + c] +=
        __bfloat162float(dout[static_cast<int64_t>(t) * channels + c]);
}

__global__ void BiasRoundKernel(bf16* out, const float* acc, const bf16* bias, int tokens, int features) {
  const int64_t n = static_cast<int64_t>(tokens) * features;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float b = bias != nullptr ? __bfloat162float(bias[i % features]) : 0.0f;
    out[i] = __float2bfloat16_rn(acc[i] + b);
  }
}

__global__ void ColumnSumAddKernel(float* dbias, const bf16* dout, int tokens, int features) {
  const int f = blockIdx.x * blockDim.x + threadIdx.x;
  if (f >= features) return;
  float sum = 0.0f;
  for (int t = 0; t < tokens; ++t) sum += __bfloat162float(dout[static_cast<int64_t>(t) * features + f]);
  dbias[f] += sum;
}

// One warp per row: every lane reads both log-sum-exps before lane 0 overwrites the row's.
__global__ void MergeKernel(int rows, int head_dim, float* o, float* lse, const float* part_o,
                            const float* part_lse) {
  const int row = blockIdx.x * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const float a = lse[row], b = part_lse[row];
  const float m = fmaxf(a, b);
  if (m == -INFINITY) return;  // neither part saw a key
  const float merged = m + logf(expf(a - m) + expf(b - m));
  const float wa = expf(a - merged), wb = expf(b - merged);
  float* out = o + static_cast<int64_t>(row) * head_dim;
  const float* part = part_o + static_cast<int64_t>(row) * head_dim;
  for (int d = lane; d < head_dim; d += kWarpSize) out[d] = wa * out[d] + wb * part[d];
  __syncwarp();
  if (lane == 0) lse[row] = merged;
}

__global__ void FillKernel(float* x, int64_t n, float value) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] = value;
}

unsigned Columns(int n) { return static_cast<unsigned>(CeilDiv(n, kThreads)); }

}  // namespace

void EmbeddingForward(bf16* out, const int32_t* ids, const bf16* table, int tokens, int channels,
                      cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(tokens) * channels;
  if (n <= 0) return;
  EmbeddingForwardKernel<<<ElementwiseBlocks(n, kThreads), kThreads, 0, stream>>>(out, ids, table, tokens,
                                                                                  channels);
  CUDA_CHECK(cudaGetLastError());
}

void EmbeddingBackward(float* dtable, const bf16* dout, const int32_t* ids, int tokens, int channels,
                       cudaStream_t stream) {
  if (tokens <= 0 || channels <= 0) return;
  EmbeddingBackwardKernel<<<Columns(channels), kThreads, 0, stream>>>(dtable, dout, ids, tokens, channels);
  CUDA_CHECK(cudaGetLastError());
}

void BiasRound(bf16* out, const float* acc, const bf16* bias, int tokens, int features, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(tokens) * features;
  if (n <= 0) return;
  BiasRoundKernel<<<ElementwiseBlocks(n, kThreads), kThreads, 0, stream>>>(out, acc, bias, tokens, features);
  CUDA_CHECK(cudaGetLastError());
}

void ColumnSumAdd(float* dbias, const bf16* dout, int tokens, int features, cudaStream_t stream) {
  if (tokens <= 0 || features <= 0) return;
  ColumnSumAddKernel<<<Columns(features), kThreads, 0, stream>>>(dbias, dout, tokens, features);
  CUDA_CHECK(cudaGetLastError());
}

void MergeAttentionPartial(int rows, int head_dim, float* o, float* lse, const float* part_o,
                           const float* part_lse, cudaStream_t stream) {
  if (rows <= 0) return;
  constexpr int kRowsPerBlock = kThreads / kWarpSize;
  MergeKernel<<<static_cast<unsigned>(CeilDiv(rows, kRowsPerBlock)), kThreads, 0, stream>>>(
      rows, head_dim, o, lse, part_o, part_lse);
  CUDA_CHECK(cudaGetLastError());
}

void Fill(float* x, int64_t n, float value, cudaStream_t stream) {
  if (n <= 0) return;
  FillKernel<<<ElementwiseBlocks(n, kThreads), kThreads, 0, stream>>>(x, n, value);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace longctx::cuda
