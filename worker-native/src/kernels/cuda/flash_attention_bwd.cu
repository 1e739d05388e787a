// Flash attention backward (see flash_attention.h for the algorithm and the contract).
//
// With P = softmax(scale·Q·Kᵀ) recomputed from the saved lse, and D = rowsum(dO ∘ O):
//   dV = Pᵀ·dO,   dP = dO·Vᵀ,   dS = P ∘ (dP − D),   dQ = scale·dS·K,   dK = scale·dSᵀ·Q
// The dK/dV kernel works on transposed score blocks (keys as rows: Sᵀ = K·Qᵀ), so that Pᵀ and dSᵀ
// come out of the accumulators already in the A-operand layout of the dV and dK products.
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_attention_tiles.cuh"

namespace longctx::cuda {

namespace {

using namespace flash;

struct BackwardParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  const bf16* o;
  const float* lse;
  const bf16* dout;
  float* dq;
  float* dk;
  float* dv;
  float* dsum;  // D, [q_len, heads]
  int q_len, kv_len, heads, kv_heads, group, head_dim;
  float scale, scale_log2;
};

// The saved lse in the exp2 domain, as the subtrahend that turns a score into its probability. A
// row with no visible key (lse = −inf) gets +inf, so its probabilities are 0 rather than NaN.
__device__ __forceinline__ float Log2Lse(float lse) { return lse == -INFINITY ? INFINITY : lse * kLog2e; }

// D[row] = Σ_d dO[row, d] · O[row, d], one warp per (token, head) row.
__global__ void DotRowsKernel(float* dsum, const bf16* dout, const bf16* o, int64_t rows, int head_dim) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  float sum = 0.0f;
  for (int d = lane; d < head_dim; d += kWarpSize)
    sum += __bfloat162float(dout[row * head_dim + d]) * __bfloat162float(o[row * head_dim + d]);
  sum = WarpSum(sum);
  if (lane == 0) dsum[row] = sum;
}

// Block (key tile, kv head); warp w owns keys 16w..16w+15 of the tile and accumulates their dK and
// dV over every query tile of every query head in the kv group.
template <int D, bool kCausal>
__global__ void __launch_bounds__(kThreads) FlashBackwardKvKernel(BackwardParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* k_tile = reinterpret_cast<bf16*>(smem);
  bf16* v_tile = k_tile + TileElems<D>();
  bf16* q_tile = v_tile + TileElems<D>();
  bf16* do_tile = q_tile + TileElems<D>();
  float* lse_tile = reinterpret_cast<float*>(do_tile + TileElems<D>());  // [64], exp2 domain
  float* dsum_tile = lse_tile + kTile;                                   // [64]

  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int g = lane / 4, t = lane % 4;
  const int kv_tile = blockIdx.x, kvh = blockIdx.y;
  const int k0 = kv_tile * kTile;
  const int64_t q_row = static_cast<int64_t>(p.heads) * D, kv_row = static_cast<int64_t>(p.kv_heads) * D;

  LoadRowsAsync<D>(k_tile, p.k + static_cast<int64_t>(kvh) * D, kv_row, k0, p.kv_len);
  LoadRowsAsync<D>(v_tile, p.v + static_cast<int64_t>(kvh) * D, kv_row, k0, p.kv_len);
  CpAsyncCommit();

  float dk_acc[D / 8][4], dv_acc[D / 8][4];
  Zero(dk_acc);
  Zero(dv_acc);
  const int q_tiles = (p.q_len + kTile - 1) / kTile;
  // Causal: query tiles before this key tile see none of its keys.
  const int first_q_tile = kCausal ? kv_tile : 0;

  for (int gi = 0; gi < p.group; ++gi) {
    const int h = kvh * p.group + gi;
    const bf16* q = p.q + static_cast<int64_t>(h) * D;
    const bf16* dout = p.dout + static_cast<int64_t>(h) * D;
    for (int i = first_q_tile; i < q_tiles; ++i) {
      const int q0 = i * kTile;
      LoadRowsAsync<D>(q_tile, q, q_row, q0, p.q_len);
      LoadRowsAsync<D>(do_tile, dout, q_row, q0, p.q_len);
      CpAsyncCommit();
      if (threadIdx.x < kTile) {
        const int query = q0 + threadIdx.x;
        const bool valid = query < p.q_len;
        const int64_t idx = static_cast<int64_t>(query) * p.heads + h;
        lse_tile[threadIdx.x] = valid ? Log2Lse(p.lse[idx]) : INFINITY;  // padding rows: P = 0
        dsum_tile[threadIdx.x] = valid ? p.dsum[idx] : 0.0f;
      }
      CpAsyncWait<0>();
      __syncthreads();

      // Pᵀ: rows are this warp's keys, columns the tile's queries.
      float s[8][4];
      Zero(s);
      RowsTimesRowsT<D>(s, k_tile, warp * 16, q_tile, lane);
      const bool mask_tile = k0 + kTile > p.kv_len || (kCausal && i == kv_tile);
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nb * 8 + 2 * t + (e & 1);
          float prob = exp2f(s[nb][e] * p.scale_log2 - lse_tile[col]);
          if (mask_tile) {
            const int key = k0 + warp * 16 + g + (e >= 2 ? 8 : 0);
            if (key >= p.kv_len || (kCausal && key > q0 + col)) prob = 0.0f;
          }
          s[nb][e] = prob;
        }

      // dV += Pᵀ·dO
      ScoresTimesTile<D>(dv_acc, s, do_tile, lane);

      // dPᵀ = V·dOᵀ, then dSᵀ = Pᵀ ∘ (dPᵀ − D[query]) in place.
      float ds[8][4];
      Zero(ds);
      RowsTimesRowsT<D>(ds, v_tile, warp * 16, do_tile, lane);
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) ds[nb][e] = s[nb][e] * (ds[nb][e] - dsum_tile[nb * 8 + 2 * t + (e & 1)]);

      // dK += dSᵀ·Q (the scale is applied once, at the end)
      ScoresTimesTile<D>(dk_acc, ds, q_tile, lane);
      __syncthreads();  // every warp is done with this query tile before the next one loads
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = k0 + warp * 16 + g + 8 * r;
    if (key >= p.kv_len) continue;
    const int64_t base = static_cast<int64_t>(key) * kv_row + static_cast<int64_t>(kvh) * D + 2 * t;
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb) {
      float* dk = p.dk + base + nb * 8;
      float* dv = p.dv + base + nb * 8;
      dk[0] += dk_acc[nb][2 * r] * p.scale;
      dk[1] += dk_acc[nb][2 * r + 1] * p.scale;
      dv[0] += dv_acc[nb][2 * r];
      dv[1] += dv_acc[nb][2 * r + 1];
    }
  }
}

// Block (query tile, head); warp w owns query rows 16w..16w+15 and accumulates their dQ over the
// key tiles.
template <int D, bool kCausal>
__global__ void __launch_bounds__(kThreads) FlashBackwardQKernel(BackwardParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* q_tile = reinterpret_cast<bf16*>(smem);
  bf16* do_tile = q_tile + TileElems<D>();
  bf16* k_tile = do_tile + TileElems<D>();
  bf16* v_tile = k_tile + TileElems<D>();

  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int g = lane / 4, t = lane % 4;
  const int tile = gridDim.x - 1 - blockIdx.x;  // the longest causal rows first
  const int h = blockIdx.y, kvh = h / p.group;
  const int q0 = tile * kTile;
  const int64_t q_row = static_cast<int64_t>(p.heads) * D, kv_row = static_cast<int64_t>(p.kv_heads) * D;
  const bf16* k = p.k + static_cast<int64_t>(kvh) * D;
  const bf16* v = p.v + static_cast<int64_t>(kvh) * D;

  LoadRowsAsync<D>(q_tile, p.q + static_cast<int64_t>(h) * D, q_row, q0, p.q_len);
  LoadRowsAsync<D>(do_tile, p.dout + static_cast<int64_t>(h) * D, q_row, q0, p.q_len);
  CpAsyncCommit();

  float row_lse[2], row_dsum[2];  // rows g and g+8 of this warp
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int query = q0 + warp * 16 + g + 8 * r;
    const bool valid = query < p.q_len;
    const int64_t idx = static_cast<int64_t>(query) * p.heads + h;
    row_lse[r] = valid ? Log2Lse(p.lse[idx]) : INFINITY;
    row_dsum[r] = valid ? p.dsum[idx] : 0.0f;
  }

  int kv_tiles = (p.kv_len + kTile - 1) / kTile;
  if (kCausal) kv_tiles = min(kv_tiles, tile + 1);
  float dq_acc[D / 8][4];
  Zero(dq_acc);

  for (int j = 0; j < kv_tiles; ++j) {
    const int k0 = j * kTile;
    LoadRowsAsync<D>(k_tile, k, kv_row, k0, p.kv_len);
    LoadRowsAsync<D>(v_tile, v, kv_row, k0, p.kv_len);
    CpAsyncCommit();
    CpAsyncWait<0>();
    __syncthreads();

    float s[8][4];
    Zero(s);
    RowsTimesRowsT<D>(s, q_tile, warp * 16, k_tile, lane);
    const bool mask_tile = k0 + kTile > p.kv_len || (kCausal && j == tile);
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >= 2 ? 1 : 0;
        float prob = exp2f(s[nb][e] * p.scale_log2 - row_lse[r]);
        if (mask_tile) {
          const int key = k0 + nb * 8 + 2 * t + (e & 1);
          const int query = q0 + warp * 16 + g + 8 * r;
          if (key >= p.kv_len || (kCausal && key > query)) prob = 0.0f;
        }
        s[nb][e] = prob;
      }

    // dP = dO·Vᵀ, then dS = P ∘ (dP − D[row]) in place.
    float ds[8][4];
    Zero(ds);
    RowsTimesRowsT<D>(ds, do_tile, warp * 16, v_tile, lane);
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) ds[nb][e] = s[nb][e] * (ds[nb][e] - row_dsum[e >= 2 ? 1 : 0]);

    // dQ += dS·K
    ScoresTimesTile<D>(dq_acc, ds, k_tile, lane);
    __syncthreads();  // every warp is done with K_j and V_j before the next tiles load
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int query = q0 + warp * 16 + g + 8 * r;
    if (query >= p.q_len) continue;
    float* dq = p.dq + static_cast<int64_t>(query) * q_row + static_cast<int64_t>(h) * D + 2 * t;
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb) {
      dq[nb * 8] += dq_acc[nb][2 * r] * p.scale;
      dq[nb * 8 + 1] += dq_acc[nb][2 * r + 1] * p.scale;
    }
  }
}

template <int D, bool kCausal>
void Launch(const BackwardParams& p, cudaStream_t stream) {
  const int kv_smem =
      4 * TileElems<D>() * static_cast<int>(sizeof(bf16)) + 2 * kTile * static_cast<int>(sizeof(float));
  auto kv_kernel = FlashBackwardKvKernel<D, kCausal>;
  CUDA_CHECK(cudaFuncSetAttribute(kv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kv_smem));
  dim3 kv_grid(static_cast<unsigned>(CeilDiv(p.kv_len, kTile)), static_cast<unsigned>(p.kv_heads));
  kv_kernel<<<kv_grid, kThreads, kv_smem, stream>>>(p);
  CUDA_CHECK(cudaGetLastError());

  const int q_smem = 4 * TileElems<D>() * static_cast<int>(sizeof(bf16));
  auto q_kernel = FlashBackwardQKernel<D, kCausal>;
  CUDA_CHECK(cudaFuncSetAttribute(q_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, q_smem));
  dim3 q_grid(static_cast<unsigned>(CeilDiv(p.q_len, kTile)), static_cast<unsigned>(p.heads));
  q_kernel<<<q_grid, kThreads, q_smem, stream>>>(p);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

size_t FlashAttentionBackwardWorkspaceBytes(const AttentionDims& d) {
  return static_cast<size_t>(d.q_len > 0 ? d.q_len : 0) * (d.heads > 0 ? d.heads : 0) * sizeof(float);
}

void FlashAttentionBackward(const AttentionDims& d, AttentionMask mask, const bf16* q, const bf16* k,
                            const bf16* v, const bf16* o, const float* lse, const bf16* dout, float* dq,
                            float* dk, float* dv, void* workspace, cudaStream_t stream) {
  CheckAttentionDims(d, mask);
  BackwardParams p{q,
                   k,
                   v,
                   o,
                   lse,
                   dout,
                   dq,
                   dk,
                   dv,
                   static_cast<float*>(workspace),
                   d.q_len,
                   d.kv_len,
                   d.heads,
                   d.kv_heads,
                   d.heads / d.kv_heads,
                   d.head_dim,
                   d.scale,
                   d.scale * kLog2e};
  const int64_t rows = static_cast<int64_t>(d.q_len) * d.heads;
  constexpr int kRowsPerBlock = 8;  // 8 warps of 32
  DotRowsKernel<<<static_cast<unsigned>(CeilDiv(rows, kRowsPerBlock)), kRowsPerBlock * kWarpSize, 0,
                  stream>>>(p.dsum, dout, o, rows, d.head_dim);
  CUDA_CHECK(cudaGetLastError());
  const bool causal = mask == AttentionMask::kCausal;
  if (d.head_dim == 64)
    causal ? Launch<64, true>(p, stream) : Launch<64, false>(p, stream);
  else
    causal ? Launch<128, true>(p, stream) : Launch<128, false>(p, stream);
}

}  // namespace longctx::cuda
