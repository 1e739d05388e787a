// The tiled tensor-core GEMM: what runs when cuBLASLt is not available.
//
// Each block computes a 128×128 tile of C with 8 warps (2 along m × 4 along n, 64×32 each). The
// k dimension is walked 32 at a time through a two-stage shared-memory pipeline: while the warps
// multiply stage s, cp.async is already bringing the next A and B tiles into stage s^1.
// Tiles are copied into shared memory in their stored orientation (16 bytes at a time along the
// contiguous dimension, so global reads are coalesced whatever the transposes), and the mma
// fragments are read from them with ldmatrix or ldmatrix.trans (see mma.cuh) — the transposes cost
// nothing. Rows are padded by 8 bf16 so the eight 16-byte rows of each ldmatrix hit distinct banks.
// Edges: chunks past m, n or k are zero-filled; an operand whose leading dimension or base is
// not 16-byte aligned is copied element by element.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cublaslt_api.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/mma.cuh"

namespace longctx::cuda {

namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32;
constexpr int kThreads = 256;
constexpr int kPad = 8;
constexpr int kShortStride = kBK + kPad;         // a tile stored with k contiguous: [128][40]
constexpr int kLongStride = kBM + kPad;          // a tile stored with m or n contiguous: [32][136]
constexpr int kStageElems = kBM * kShortStride;  // ≥ kBK * kLongStride; both layouts fit
static_assert(kBM == kBN, "the tile layouts below assume square block tiles");
static_assert(kBK * kLongStride <= kStageElems, "stage too small");

struct GemmParams {
  int m, n, k;
  float alpha, beta;
  const bf16* a;
  int lda;
  const bf16* b;
  int ldb;
  void* c;
  int ldc;
  bool c_bf16;
  bool a_vector;  // lda and the base allow 16-byte copies
  bool b_vector;
};

// Copies one 32×128 or 128×32 tile (`rows` strided × `cols` contiguous, in shared memory with row
// stride `stride`) of a matrix stored with `total_rows` × `total_cols` and leading dimension ld,
// starting at (row0, col0). 512 chunks of 8 bf16: two per thread.
template <int kRows, int kCols>
__device__ __forceinline__ void LoadTile(bf16* smem, int stride, const bf16* base, int ld, int total_rows,
                                         int total_cols, int row0, int col0, bool vector_ok) {
  constexpr int kChunksPerRow = kCols / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kChunks % kThreads == 0, "chunks must split evenly over the threads");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int id = threadIdx.x + i * kThreads;
    const int r = id / kChunksPerRow;
    const int c = (id % kChunksPerRow) * 8;
    const int grow = row0 + r, gcol = col0 + c;
    bf16* dst = smem + r * stride + c;
    const bool row_in = grow < total_rows;
    if (vector_ok && (!row_in || gcol + 8 <= total_cols || gcol >= total_cols)) {
      const bool valid = row_in && gcol < total_cols;
      const bf16* src = valid ? base + static_cast<int64_t>(grow) * ld + gcol : base;
      CpAsync16(dst, src, valid);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const bool valid = row_in && gcol + j < total_cols;
        dst[j] = valid ? base[static_cast<int64_t>(grow) * ld + gcol + j] : __float2bfloat16_rn(0.0f);
      }
    }
  }
}

template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads) GemmTiledKernel(GemmParams p) {
  __shared__ __align__(16) bf16 a_tile[2][kStageElems];
  __shared__ __align__(16) bf16 b_tile[2][kStageElems];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
  const int g = lane / 4, t = lane % 4;

  auto load_stage = [&](int stage, int k0) {
    if (kTransA)  // A stored [k][m]
      LoadTile<kBK, kBM>(a_tile[stage], kLongStride, p.a, p.lda, p.k, p.m, k0, m0, p.a_vector);
    else  // A stored [m][k]
      LoadTile<kBM, kBK>(a_tile[stage], kShortStride, p.a, p.lda, p.m, p.k, m0, k0, p.a_vector);
    if (kTransB)  // B stored [n][k]
      LoadTile<kBN, kBK>(b_tile[stage], kShortStride, p.b, p.ldb, p.n, p.k, n0, k0, p.b_vector);
    else  // B stored [k][n]
      LoadTile<kBK, kBN>(b_tile[stage], kLongStride, p.b, p.ldb, p.k, p.n, k0, n0, p.b_vector);
  };

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  const int k_tiles = (p.k + kBK - 1) / kBK;
  if (k_tiles > 0) load_stage(0, 0);
  CpAsyncCommit();
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int stage = kt & 1;
    if (kt + 1 < k_tiles) load_stage(stage ^ 1, (kt + 1) * kBK);
    CpAsyncCommit();  // possibly empty: keeps "the previous group" meaning stage `stage`
    CpAsyncWait<1>();
    __syncthreads();
    const bf16* as = a_tile[stage];
    const bf16* bs = b_tile[stage];
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t a_frag[4][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int m_base = warp_m * 64 + mi * 16;
        if (kTransA) {
          const int kk = ks * 16 + (lane % 8) + (lane / 16) * 8;
          const int mm = m_base + ((lane / 8) % 2) * 8;
          LdMatrixX4Trans(a_frag[mi], as + kk * kLongStride + mm);
        } else {
          const int mm = m_base + (lane % 16);
          const int kk = ks * 16 + (lane / 16) * 8;
          LdMatrixX4(a_frag[mi], as + mm * kShortStride + kk);
        }
      }
      uint32_t b_frag[4][2];
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        const int n_base = warp_n * 32 + np * 16;
        uint32_t r[4];
        if (kTransB) {
          const int nn = n_base + (lane % 8) + (lane / 16) * 8;
          const int kk = ks * 16 + ((lane / 8) % 2) * 8;
          LdMatrixX4(r, bs + nn * kShortStride + kk);
        } else {
          const int kk = ks * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
          const int nn = n_base + (lane / 16) * 8;
          LdMatrixX4Trans(r, bs + kk * kLongStride + nn);
        }
        b_frag[2 * np][0] = r[0];
        b_frag[2 * np][1] = r[1];
        b_frag[2 * np + 1][0] = r[2];
        b_frag[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int nj = 0; nj < 4; ++nj) MmaBf16(acc[mi][nj], a_frag[mi], b_frag[nj][0], b_frag[nj][1]);
    }
    __syncthreads();  // everyone is done with `stage` before the next iteration refills it
  }

  // Epilogue: each accumulator element goes straight to its place in C.
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int nj = 0; nj < 4; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = m0 + warp_m * 64 + mi * 16 + g + (e >= 2 ? 8 : 0);
        const int col = n0 + warp_n * 32 + nj * 8 + 2 * t + (e & 1);
        if (row >= p.m || col >= p.n) continue;
        const int64_t idx = static_cast<int64_t>(row) * p.ldc + col;
        float v = p.alpha * acc[mi][nj][e];
        if (p.c_bf16) {
          bf16* c = static_cast<bf16*>(p.c);
          if (p.beta != 0.0f) v += p.beta * __bfloat162float(c[idx]);
          c[idx] = __float2bfloat16_rn(v);
        } else {
          float* c = static_cast<float*>(p.c);
          if (p.beta != 0.0f) v += p.beta * c[idx];
          c[idx] = v;
        }
      }
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

void CheckGemm(bool trans_a, bool trans_b, int m, int n, int k, int lda, int ldb, int ldc) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("gemm: " + what); };
  if (m < 0 || n < 0 || k < 0)
    bad("sizes must be >= 0, got m=" + std::to_string(m) + " n=" + std::to_string(n) +
        " k=" + std::to_string(k));
  const int a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
  if (lda < (a_cols > 1 ? a_cols : 1))
    bad("lda=" + std::to_string(lda) + " is smaller than the " + std::to_string(a_cols) +
        " columns A is stored with");
  if (ldb < (b_cols > 1 ? b_cols : 1))
    bad("ldb=" + std::to_string(ldb) + " is smaller than the " + std::to_string(b_cols) +
        " columns B is stored with");
  if (ldc < (n > 1 ? n : 1)) bad("ldc=" + std::to_string(ldc) + " is smaller than n=" + std::to_string(n));
}

void GemmTiled(bool trans_a, bool trans_b, const GemmParams& p, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>(CeilDiv(p.n, kBN)), static_cast<unsigned>(CeilDiv(p.m, kBM)));
  if (grid.y > 65535u)
    throw std::invalid_argument("gemm: m=" + std::to_string(p.m) + " needs too many row tiles");
  if (trans_a && trans_b)
    GemmTiledKernel<true, true><<<grid, kThreads, 0, stream>>>(p);
  else if (trans_a)
    GemmTiledKernel<true, false><<<grid, kThreads, 0, stream>>>(p);
  else if (trans_b)
    GemmTiledKernel<false, true><<<grid, kThreads, 0, stream>>>(p);
  else
    GemmTiledKernel<false, false><<<grid, kThreads, 0, stream>>>(p);
  CUDA_CHECK(cudaGetLastError());
}

void Dispatch(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const bf16* a, int lda,
              const bf16* b, int ldb, float beta, void* c, bool c_bf16, int ldc, cudaStream_t stream,
              GemmBackend backend) {
  CheckGemm(trans_a, trans_b, m, n, k, lda, ldb, ldc);
  if (backend == GemmBackend::kCublasLt && !HaveCublasLt())
    throw std::invalid_argument("gemm: the cuBLASLt backend was asked for, but it is not usable here (" +
                                lt::CublasLt().error + ")");
  if (m == 0 || n == 0) return;
  if (backend != GemmBackend::kTiled && HaveCublasLt()) {
    if (GemmCublasLt(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, c_bf16, ldc, stream)) return;
    if (backend == GemmBackend::kCublasLt)
      throw std::invalid_argument("gemm: cuBLASLt has no algorithm for m=" + std::to_string(m) +
                                  " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                                  " with these operand alignments");
  }
  GemmParams p{m,
               n,
               k,
               alpha,
               beta,
               a,
               lda,
               b,
               ldb,
               c,
               ldc,
               c_bf16,
               lda % 8 == 0 && Aligned16(a),
               ldb % 8 == 0 && Aligned16(b)};
  GemmTiled(trans_a, trans_b, p, stream);
}

}  // namespace

void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const bf16* a, int lda, const bf16* b,
          int ldb, float beta, float* c, int ldc, cudaStream_t stream, GemmBackend backend) {
  Dispatch(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, false, ldc, stream, backend);
}

void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const bf16* a, int lda, const bf16* b,
          int ldb, float beta, bf16* c, int ldc, cudaStream_t stream, GemmBackend backend) {
  Dispatch(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, true, ldc, stream, backend);
}

}  // namespace longctx::cuda
