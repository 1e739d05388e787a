// Matrix products on the GPU: bf16 operands, float32 accumulation, float32 or bf16 result.
//
// Row-major, as every tensor of the worker: C[m, n] = alpha · op(A) · op(B) + beta · C, where
//   op(A) = A (stored [m, k], lda ≥ k)   or Aᵀ (trans_a: A stored [k, m], lda ≥ m)
//   op(B) = B (stored [k, n], ldb ≥ n)   or Bᵀ (trans_b: B stored [n, k], ldb ≥ k)
// A linear layer with torch's [out, in] weights is out = in · Wᵀ (trans_b), its backward
// din = dout · W and dW += doutᵀ · in (trans_a, beta = 1). With beta = 0, C is not read (it may
// hold garbage or NaN).
//
// Two implementations: cuBLASLt when the host has it (opened at run time, cublaslt_api.h; the
// fastest on every GPU), and our own tiled tensor-core kernel, which needs nothing but the CUDA
// runtime and is what a host without cuBLAS runs. kAuto picks cuBLASLt when present.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/bf16.h"

namespace longctx::cuda {

enum class GemmBackend { kAuto, kTiled, kCublasLt };

// True when cuBLASLt was found and loaded (cublaslt_api.h says where, or why not).
bool HaveCublasLt();

// Throws std::invalid_argument for negative sizes, leading dimensions too small for the stored
// shapes, or kCublasLt on a host without it.
void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const bf16* a, int lda, const bf16* b,
          int ldb, float beta, float* c, int ldc, cudaStream_t stream,
          GemmBackend backend = GemmBackend::kAuto);
void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const bf16* a, int lda, const bf16* b,
          int ldb, float beta, bf16* c, int ldc, cudaStream_t stream,
          GemmBackend backend = GemmBackend::kAuto);

// The cuBLASLt path (gemm_cublaslt.cu), callable only when HaveCublasLt(); c_bf16 says which type
// c points to. Returns false, having done nothing, when cuBLASLt has no algorithm for the shape and
// operand alignment.
bool GemmCublasLt(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const bf16* a, int lda,
                  const bf16* b, int ldb, float beta, void* c, bool c_bf16, int ldc, cudaStream_t stream);

}  // namespace longctx::cuda
