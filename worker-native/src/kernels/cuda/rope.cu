#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/rope.h"

namespace longctx::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void RopeTablesKernel(float* cos_out, float* sin_out, const int32_t* positions, int tokens,
                                 int head_dim, double theta) {
  const int half = head_dim / 2;
  const int64_t n = static_cast<int64_t>(tokens) * half;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t t = idx / half;
    const int i = static_cast<int>(idx % half);
    const double inv_freq = pow(theta, -2.0 * i / head_dim);
    const double angle = static_cast<double>(positions[t]) * inv_freq;
    double s, c;
    sincos(angle, &s, &c);
    cos_out[idx] = static_cast<float>(c);
    sin_out[idx] = static_cast<float>(s);
  }
}

// One thread per (token, head, i < half): rotates the pair (x[i], x[i+half]).
__global__ void RopeRotateKernel(bf16* x, const float* cos_table, const float* sin_table, int tokens,
                                 int heads, int head_dim, float sign) {
  const int half = head_dim / 2;
  const int64_t n = static_cast<int64_t>(tokens) * heads * half;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int i = static_cast<int>(idx % half);
    const int64_t token_head = idx / half;  // = t * heads + h
    const int64_t t = token_head / heads;
    const float c = cos_table[t * half + i];
    const float s = sign * sin_table[t * half + i];
    bf16* v = x + token_head * head_dim;
    const float a = Load(v + i), b = Load(v + i + half);
    Store(v + i, a * c - b * s);
    Store(v + i + half, b * c + a * s);
  }
}

void Rotate(bf16* x, const float* cos, const float* sin, int tokens, int heads, int head_dim, float sign,
            cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(tokens) * heads * (head_dim / 2);
  if (n <= 0) return;
  RopeRotateKernel<<<ElementwiseBlocks(n, kThreads), kThreads, 0, stream>>>(x, cos, sin, tokens, heads,
                                                                            head_dim, sign);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void RopeTables(float* cos, float* sin, const int32_t* positions, int tokens, int head_dim, double theta,
                cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(tokens) * (head_dim / 2);
  if (n <= 0) return;
  RopeTablesKernel<<<ElementwiseBlocks(n, kThreads), kThreads, 0, stream>>>(cos, sin, positions, tokens,
                                                                            head_dim, theta);
  CUDA_CHECK(cudaGetLastError());
}

void RopeForward(bf16* x, const float* cos, const float* sin, int tokens, int heads, int head_dim,
                 cudaStream_t stream) {
  Rotate(x, cos, sin, tokens, heads, head_dim, 1.0f, stream);
}

void RopeBackward(bf16* dx, const float* cos, const float* sin, int tokens, int heads, int head_dim,
                  cudaStream_t stream) {
  Rotate(dx, cos, sin, tokens, heads, head_dim, -1.0f, stream);
}

}  // namespace longctx::cuda
