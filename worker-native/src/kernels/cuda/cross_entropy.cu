#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"

namespace longctx::cuda {

namespace {

constexpr int kRowThreads = 512;

size_t Align(size_t bytes) { return (bytes + 255) / 256 * 256; }

struct Workspace {
  float* logits;     // [chunk, vocab]
  bf16* dlogits;     // [chunk, vocab]
  double* row_loss;  // [tokens]
  int* row_counted;  // [tokens]
  double* totals;    // [2]: loss sum, count
};

Workspace Carve(void* base, int tokens, int vocab, int chunk) {
  char* p = static_cast<char*>(base);
  Workspace w;
  const size_t cells = static_cast<size_t>(chunk) * vocab;
  w.logits = reinterpret_cast<float*>(p);
  p += Align(cells * sizeof(float));
  w.dlogits = reinterpret_cast<bf16*>(p);
  p += Align(cells * sizeof(bf16));
  w.row_loss = reinterpret_cast<double*>(p);
  p += Align(static_cast<size_t>(tokens) * sizeof(double));
  w.row_counted = reinterpret_cast<int*>(p);
  p += Align(static_cast<size_t>(tokens) * sizeof(int));
  w.totals = reinterpret_cast<double*>(p);
  return w;
}

// One block per token of the chunk: the row's max and Σexp by block reductions, its loss, and
// (when backward) its dlogits, written as bf16 for the two gradient GEMMs.
__global__ void CrossEntropyRowKernel(const float* logits, bf16* dlogits, const int32_t* labels, int vocab,
                                      float grad_scale, bool backward, double* row_loss, int* row_counted) {
  __shared__ float scratch[kRowThreads / kWarpSize];
  const int r = blockIdx.x;
  const int32_t label = labels[r];
  const float* row = logits + static_cast<size_t>(r) * vocab;
  bf16* drow = dlogits + static_cast<size_t>(r) * vocab;
  if (label == kIgnoreIndex || label < 0 || label >= vocab) {
    if (threadIdx.x == 0) {
      row_loss[r] = label == kIgnoreIndex ? 0.0 : nan("");
      row_counted[r] = label == kIgnoreIndex ? 0 : 1;
    }
    if (backward)
      for (int v = threadIdx.x; v < vocab; v += blockDim.x) drow[v] = __float2bfloat16_rn(0.0f);
    return;
  }
  float max = -INFINITY;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) max = fmaxf(max, row[v]);
  max = BlockMax(max, scratch);
  float sum = 0.0f;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) sum += expf(row[v] - max);
  sum = BlockSum(sum, scratch);
  if (threadIdx.x == 0) {
    row_loss[r] = static_cast<double>(max) + log(static_cast<double>(sum)) - static_cast<double>(row[label]);
    row_counted[r] = 1;
  }
  if (!backward) return;
  const float scale = grad_scale / sum;
  for (int v = threadIdx.x; v < vocab; v += blockDim.x) {
    float d = expf(row[v] - max) * scale;
    if (v == label) d -= grad_scale;
    drow[v] = __float2bfloat16_rn(d);
  }
}

// Σ of the per-token losses and counts in a fixed order (one block), so the loss is reproducible.
__global__ void CrossEntropyTotalKernel(const double* row_loss, const int* row_counted, int tokens,
                                        double* totals) {
  __shared__ double scratch[1024 / kWarpSize];
  double loss = 0.0, count = 0.0;
  for (int t = threadIdx.x; t < tokens; t += blockDim.x) {
    loss += row_loss[t];
    count += row_counted[t];
  }
  loss = BlockSum(loss, scratch);
  count = BlockSum(count, scratch);
  if (threadIdx.x == 0) {
    totals[0] = loss;
    totals[1] = count;
  }
}

}  // namespace

size_t ChunkedCrossEntropyWorkspaceBytes(int tokens, int vocab, int chunk_tokens) {
  if (tokens <= 0 || vocab <= 0 || chunk_tokens <= 0) return 0;
  const size_t chunk = static_cast<size_t>(std::min(chunk_tokens, tokens));
  return Align(chunk * vocab * sizeof(float)) + Align(chunk * vocab * sizeof(bf16)) +
         Align(static_cast<size_t>(tokens) * sizeof(double)) +
         Align(static_cast<size_t>(tokens) * sizeof(int)) + Align(2 * sizeof(double));
}

CrossEntropyResult ChunkedCrossEntropy(const bf16* hidden, const bf16* weight, const int32_t* labels,
                                       int tokens, int channels, int vocab, int chunk_tokens,
                                       float grad_scale, bf16* dhidden, float* dweight, void* workspace,
                                       cudaStream_t stream, GemmBackend backend) {
  if (tokens <= 0 || channels <= 0 || vocab <= 0 || chunk_tokens <= 0)
    throw std::invalid_argument("cross-entropy sizes must be positive: tokens=" + std::to_string(tokens) +
                                " channels=" + std::to_string(channels) + " vocab=" + std::to_string(vocab) +
                                " chunk_tokens=" + std::to_string(chunk_tokens));
  const int chunk = std::min(chunk_tokens, tokens);
  Workspace w = Carve(workspace, tokens, vocab, chunk);
  const bool backward = dhidden != nullptr || dweight != nullptr;
  for (int start = 0; start < tokens; start += chunk) {
    const int rows = std::min(chunk, tokens - start);
    const bf16* h = hidden + static_cast<size_t>(start) * channels;
    Gemm(false, true, rows, vocab, channels, 1.0f, h, channels, weight, channels, 0.0f, w.logits, vocab,
         stream, backend);
    CrossEntropyRowKernel<<<rows, kRowThreads, 0, stream>>>(w.logits, w.dlogits, labels + start, vocab,
                                                            grad_scale, backward, w.row_loss + start,
                                                            w.row_counted + start);
    CUDA_CHECK(cudaGetLastError());
    if (dhidden != nullptr)
      Gemm(false, false, rows, channels, vocab, 1.0f, w.dlogits, vocab, weight, channels, 1.0f,
           dhidden + static_cast<size_t>(start) * channels, channels, stream, backend);
    if (dweight != nullptr)
      Gemm(true, false, vocab, channels, rows, 1.0f, w.dlogits, vocab, h, channels, 1.0f, dweight, channels,
           stream, backend);
  }
  CrossEntropyTotalKernel<<<1, 1024, 0, stream>>>(w.row_loss, w.row_counted, tokens, w.totals);
  CUDA_CHECK(cudaGetLastError());
  double totals[2];
  CUDA_CHECK(cudaMemcpyAsync(totals, w.totals, sizeof(totals), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return {totals[0], static_cast<int64_t>(totals[1])};
}

}  // namespace longctx::cuda
