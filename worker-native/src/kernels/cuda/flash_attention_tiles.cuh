// What the flash-attention kernels share: the tile shape, the padded shared-memory layout, the
// asynchronous row loader, and the fragment loads of mma.cuh specialised to these tiles.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/bf16.h"
#include "kernels/cuda/mma.cuh"

namespace longctx::cuda::flash {

constexpr int kTile = 64;      // queries per block and keys per tile
constexpr int kThreads = 128;  // 4 warps, 16 rows each
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Rows of a [64][D] tile are padded to D + 8 bf16: a 16-byte shift per row, so the eight rows an
// ldmatrix reads fall in distinct banks.
template <int D>
__host__ __device__ constexpr int Stride() {
  return D + 8;
}
template <int D>
__host__ __device__ constexpr int TileElems() {
  return kTile * Stride<D>();
}

// Issues cp.async copies of rows first_row .. first_row+63 of a token-major tensor (row r of this
// head at base + r·row_stride, D contiguous bf16) into a padded tile; rows at or past total_rows
// become zeros. Every thread of the block must call it; the caller commits and waits.
template <int D>
__device__ __forceinline__ void LoadRowsAsync(bf16* tile, const bf16* base, int64_t row_stride, int first_row,
                                              int total_rows) {
  constexpr int kChunksPerRow = D / 8;
  constexpr int kChunks = kTile * kChunksPerRow;
  static_assert(kChunks % kThreads == 0, "chunks must split evenly");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int id = threadIdx.x + i * kThreads;
    const int r = id / kChunksPerRow;
    const int c = (id % kChunksPerRow) * 8;
    const bool valid = first_row + r < total_rows;
    const bf16* src = valid ? base + static_cast<int64_t>(first_row + r) * row_stride + c : base;
    CpAsync16(tile + r * Stride<D>() + c, src, valid);
  }
}

// A fragment (16 rows × 16 k) of a tile whose rows are the mma's rows and whose columns are k:
// rows row0..row0+15, columns k0..k0+15.
template <int D>
__device__ __forceinline__ void LoadA(uint32_t (&a)[4], const bf16* tile, int row0, int k0, int lane) {
  LdMatrixX4(a, tile + (row0 + lane % 16) * Stride<D>() + k0 + (lane / 16) * 8);
}

// B fragments for two adjacent n-blocks of 8 from a tile whose rows are n and whose columns are k
// (K when computing Q·Kᵀ): n0..n0+15, k0..k0+15. b[0], b[1] are n-block n0; b[2], b[3] n0+8.
template <int D>
__device__ __forceinline__ void LoadBRowsN(uint32_t (&b)[4], const bf16* tile, int n0, int k0, int lane) {
  LdMatrixX4(b, tile + (n0 + lane % 8 + (lane / 16) * 8) * Stride<D>() + k0 + ((lane / 8) % 2) * 8);
}

// B fragments for two adjacent n-blocks from a tile whose rows are k and whose columns are n
// (V when computing P·V): k0..k0+15, n0..n0+15, through ldmatrix.trans.
template <int D>
__device__ __forceinline__ void LoadBRowsK(uint32_t (&b)[4], const bf16* tile, int k0, int n0, int lane) {
  LdMatrixX4Trans(b, tile + (k0 + lane % 8 + ((lane / 8) % 2) * 8) * Stride<D>() + n0 + (lane / 16) * 8);
}

// The accumulators of a 16×64 score block (8 n-blocks) as the A operand of the next product:
// k-step kk covers columns 16kk..16kk+15, i.e. n-blocks 2kk and 2kk+1.
__device__ __forceinline__ void ScoresAsA(uint32_t (&a)[4], const float (&s)[8][4], int kk) {
  a[0] = PackBf16(s[2 * kk][0], s[2 * kk][1]);
  a[1] = PackBf16(s[2 * kk][2], s[2 * kk][3]);
  a[2] = PackBf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = PackBf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// acc[16 × 64] (+)= A-tile rows a_row0.. × B-tile rowsᵀ: both tiles have D columns (the reduced
// dimension), e.g. S = Q·Kᵀ.
template <int D>
__device__ __forceinline__ void RowsTimesRowsT(float (&acc)[8][4], const bf16* a_tile, int a_row0,
                                               const bf16* b_tile, int lane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    LoadA<D>(a, a_tile, a_row0, kk * 16, lane);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      LoadBRowsN<D>(b, b_tile, np * 16, kk * 16, lane);
      MmaBf16(acc[2 * np], a, b[0], b[1]);
      MmaBf16(acc[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// acc[16 × D] += P[16 × 64] (registers) · tile[64 × D], e.g. O += P·V.
template <int D>
__device__ __forceinline__ void ScoresTimesTile(float (&acc)[D / 8][4], const float (&p)[8][4],
                                                const bf16* tile, int lane) {
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    uint32_t a[4];
    ScoresAsA(a, p, kk);
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t b[4];
      LoadBRowsK<D>(b, tile, kk * 16, dp * 16, lane);
      MmaBf16(acc[2 * dp], a, b[0], b[1]);
      MmaBf16(acc[2 * dp + 1], a, b[2], b[3]);
    }
  }
}

template <int N>
__device__ __forceinline__ void Zero(float (&acc)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[i][e] = 0.0f;
}

}  // namespace longctx::cuda::flash
