// Flash attention forward (see flash_attention.h for the algorithm and the contract).
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_attention_tiles.cuh"

namespace longctx::cuda {

namespace {

using namespace flash;

struct ForwardParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  bf16* o;
  float* o_f32;  // when set, the output is written here in float32 instead of to o
  float* lse;
  int q_len, kv_len, heads, kv_heads, group;
  float scale_log2;  // softmax scale · log2(e): the kernel works with exp2
};

// Block (query tile, head); warp w owns query rows 16w..16w+15 of the tile. Thread (g, t) of a
// warp holds, for each 8-key n-block, the scores of rows g and g+8 at keys 2t and 2t+1 (mma.cuh),
// so a row's max and sum are reduced over the 4 threads of a quad with two shuffles.
template <int D, bool kCausal>
__global__ void __launch_bounds__(kThreads) FlashForwardKernel(ForwardParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* q_tile = reinterpret_cast<bf16*>(smem);
  bf16* k_tile = q_tile + TileElems<D>();
  bf16* v_tile = k_tile + TileElems<D>();

  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int g = lane / 4, t = lane % 4;
  // Causal tiles near the end of the sequence have the most keys: start them first.
  const int tile = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, kvh = h / p.group;
  const int q0 = tile * kTile;
  const int64_t q_row = static_cast<int64_t>(p.heads) * D, kv_row = static_cast<int64_t>(p.kv_heads) * D;
  const bf16* q = p.q + static_cast<int64_t>(h) * D;
  const bf16* k = p.k + static_cast<int64_t>(kvh) * D;
  const bf16* v = p.v + static_cast<int64_t>(kvh) * D;

  int kv_tiles = (p.kv_len + kTile - 1) / kTile;
  if (kCausal) kv_tiles = min(kv_tiles, tile + 1);  // tiles past the diagonal are fully masked

  // Pipeline: group 1 = Q and K_0, group 2 = V_0; then per tile j, K_{j+1} is issued once every
  // warp has finished Q·K_jᵀ, and V_{j+1} once every warp has finished P·V_j.
  LoadRowsAsync<D>(q_tile, q, q_row, q0, p.q_len);
  LoadRowsAsync<D>(k_tile, k, kv_row, 0, p.kv_len);
  CpAsyncCommit();
  LoadRowsAsync<D>(v_tile, v, kv_row, 0, p.kv_len);
  CpAsyncCommit();

  float o_acc[D / 8][4];
  Zero(o_acc);
  float row_max[2] = {-INFINITY, -INFINITY};  // running max of scale·log2e·score, rows g and g+8
  float row_sum[2] = {0.0f, 0.0f};            // this thread's share of Σ 2^(x − max)

  for (int j = 0; j < kv_tiles; ++j) {
    const int k0 = j * kTile;
    CpAsyncWait<1>();  // Q and K_j have landed (V_j may still be in flight)
    __syncthreads();
    float s[8][4];
    Zero(s);
    RowsTimesRowsT<D>(s, q_tile, warp * 16, k_tile, lane);
    __syncthreads();  // every warp is done reading K_j
    if (j + 1 < kv_tiles) LoadRowsAsync<D>(k_tile, k, kv_row, k0 + kTile, p.kv_len);
    CpAsyncCommit();

    // Scale into the exp2 domain; mask keys past the end and, on the diagonal tile, the future.
    const bool mask_tile = k0 + kTile > p.kv_len || (kCausal && j == tile);
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nb][e] * p.scale_log2;
        if (mask_tile) {
          const int key = k0 + nb * 8 + 2 * t + (e & 1);
          const int query = q0 + warp * 16 + g + (e >= 2 ? 8 : 0);
          if (key >= p.kv_len || (kCausal && key > query)) x = -INFINITY;
        }
        s[nb][e] = x;
      }

      // Online softmax, one row at a time (r = 0: row g, elements 0 and 1; r = 1: row g+8).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float m = -INFINITY;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb) m = fmaxf(m, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      const float m_new = fmaxf(row_max[r], m);
      // A row with no visible key yet keeps max −inf; subtracting 0 instead keeps exp2 at 0, not NaN.
      const float m_ref = m_new == -INFINITY ? 0.0f : m_new;
      const float rescale = exp2f(row_max[r] - m_ref);
      row_max[r] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb) {
        s[nb][2 * r] = exp2f(s[nb][2 * r] - m_ref);
        s[nb][2 * r + 1] = exp2f(s[nb][2 * r + 1] - m_ref);
        sum += s[nb][2 * r] + s[nb][2 * r + 1];
      }
      row_sum[r] = row_sum[r] * rescale + sum;
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb) {
        o_acc[nb][2 * r] *= rescale;
        o_acc[nb][2 * r + 1] *= rescale;
      }
    }

    CpAsyncWait<1>();  // V_j has landed (K_{j+1} may still be in flight)
    __syncthreads();
    ScoresTimesTile<D>(o_acc, s, v_tile, lane);
    __syncthreads();  // every warp is done reading V_j
    if (j + 1 < kv_tiles) LoadRowsAsync<D>(v_tile, v, kv_row, k0 + kTile, p.kv_len);
    CpAsyncCommit();
  }
  CpAsyncWait<0>();

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int query = q0 + warp * 16 + g + 8 * r;
    if (query >= p.q_len) continue;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int64_t at = static_cast<int64_t>(query) * q_row + static_cast<int64_t>(h) * D;
    if (p.o_f32 != nullptr) {
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb)
        *reinterpret_cast<float2*>(p.o_f32 + at + nb * 8 + 2 * t) =
            make_float2(o_acc[nb][2 * r] * inv, o_acc[nb][2 * r + 1] * inv);
    } else {
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb)
        *reinterpret_cast<__nv_bfloat162*>(p.o + at + nb * 8 + 2 * t) =
            __floats2bfloat162_rn(o_acc[nb][2 * r] * inv, o_acc[nb][2 * r + 1] * inv);
    }
    if (t == 0)
      p.lse[static_cast<int64_t>(query) * p.heads + h] =
          l > 0.0f ? (row_max[r] + log2f(l)) * kLn2 : -INFINITY;
  }
}

template <int D, bool kCausal>
void Launch(const ForwardParams& p, cudaStream_t stream) {
  const int smem = 3 * TileElems<D>() * static_cast<int>(sizeof(bf16));
  auto kernel = FlashForwardKernel<D, kCausal>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  dim3 grid(static_cast<unsigned>(CeilDiv(p.q_len, kTile)), static_cast<unsigned>(p.heads));
  kernel<<<grid, kThreads, smem, stream>>>(p);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void CheckAttentionDims(const AttentionDims& d, AttentionMask mask) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("attention: " + what); };
  if (d.q_len <= 0 || d.kv_len <= 0 || d.heads <= 0 || d.kv_heads <= 0 || d.head_dim <= 0)
    bad("sizes must be positive, got q_len=" + std::to_string(d.q_len) +
        " kv_len=" + std::to_string(d.kv_len) + " heads=" + std::to_string(d.heads) +
        " kv_heads=" + std::to_string(d.kv_heads) + " head_dim=" + std::to_string(d.head_dim));
  if (d.heads % d.kv_heads != 0)
    bad("heads=" + std::to_string(d.heads) + " is not a multiple of kv_heads=" + std::to_string(d.kv_heads));
  if (d.head_dim != 64 && d.head_dim != 128)
    bad("head_dim must be 64 or 128 on the GPU, got " + std::to_string(d.head_dim));
  if (mask == AttentionMask::kCausal && d.q_len != d.kv_len)
    bad("causal masking needs q_len == kv_len, got " + std::to_string(d.q_len) + " and " +
        std::to_string(d.kv_len));
  if (!std::isfinite(d.scale)) bad("scale must be finite, got " + std::to_string(d.scale));
  if (d.heads > 65535) bad("heads must be at most 65535, got " + std::to_string(d.heads));
}

namespace {

void Forward(const AttentionDims& d, AttentionMask mask, const bf16* q, const bf16* k, const bf16* v, bf16* o,
             float* o_f32, float* lse, cudaStream_t stream) {
  CheckAttentionDims(d, mask);
  ForwardParams p{
      q, k, v, o, o_f32, lse, d.q_len, d.kv_len, d.heads, d.kv_heads, d.heads / d.kv_heads, d.scale * kLog2e};
  const bool causal = mask == AttentionMask::kCausal;
  if (d.head_dim == 64)
    causal ? Launch<64, true>(p, stream) : Launch<64, false>(p, stream);
  else
    causal ? Launch<128, true>(p, stream) : Launch<128, false>(p, stream);
}

}  // namespace

void FlashAttentionForward(const AttentionDims& d, AttentionMask mask, const bf16* q, const bf16* k,
                           const bf16* v, bf16* o, float* lse, cudaStream_t stream) {
  Forward(d, mask, q, k, v, o, nullptr, lse, stream);
}

void FlashAttentionForward(const AttentionDims& d, AttentionMask mask, const bf16* q, const bf16* k,
                           const bf16* v, float* o, float* lse, cudaStream_t stream) {
  Forward(d, mask, q, k, v, nullptr, o, lse, stream);
}

}  // namespace longctx::cuda
