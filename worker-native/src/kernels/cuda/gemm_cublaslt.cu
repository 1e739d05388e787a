// The cuBLASLt path of Gemm (gemm.h), compiled only when CMake found cuBLASLt
// (LONGCTX_HAVE_CUBLASLT). Not compiled on machines without cuBLAS.
//
// cuBLASLt is column-major; a row-major C[m, n] is a column-major Cᵀ[n, m], and
// Cᵀ = op(B)ᵀ · op(A)ᵀ, so the row-major product is the column-major one with the operands
// swapped: A' = B, B' = A, and each operand keeps its own transpose flag.
#ifdef LONGCTX_HAVE_CUBLASLT

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "kernels/cuda/gemm.h"

namespace longctx::cuda {

namespace {

void Check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLASLt error in ") + what + ": " +
                             cublasLtGetStatusString(status));
}

// One handle per thread that calls Gemm (a device thread), created on first use.
cublasLtHandle_t Handle() {
  thread_local cublasLtHandle_t handle = [] {
    cublasLtHandle_t h = nullptr;
    Check(cublasLtCreate(&h), "cublasLtCreate");
    return h;
  }();
  return handle;
}

// Frees the descriptors however the call ends.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  ~Descriptors() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

void GemmCublasLt(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const bf16* a, int lda,
                  const bf16* b, int ldb, float beta, void* c, bool c_bf16, int ldc, cudaStream_t stream) {
  Descriptors d;
  Check(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;   // A' = B
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // B' = A
  Check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)),
        "set TRANSA");
  Check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)),
        "set TRANSB");
  // Stored shapes, column-major: B row-major [k][n] is column-major n×k; [n][k] is k×n.
  Check(cublasLtMatrixLayoutCreate(&d.a, CUDA_R_16BF, trans_b ? k : n, trans_b ? n : k, ldb), "layout B");
  Check(cublasLtMatrixLayoutCreate(&d.b, CUDA_R_16BF, trans_a ? m : k, trans_a ? k : m, lda), "layout A");
  Check(cublasLtMatrixLayoutCreate(&d.c, c_bf16 ? CUDA_R_16BF : CUDA_R_32F, n, m, ldc), "layout C");
  // algo = nullptr: cuBLASLt runs its heuristic; no workspace keeps the call free of allocations.
  Check(cublasLtMatmul(Handle(), d.op, &alpha, b, d.a, a, d.b, &beta, c, d.c, c, d.c, nullptr, nullptr, 0,
                       stream),
        "cublasLtMatmul");
}

}  // namespace longctx::cuda

#endif  // LONGCTX_HAVE_CUBLASLT
