// cuBLASLt, opened at run time (platform/shared_library.h): the build machines have no cuBLAS
// headers or libraries, and one build must run on GPU hosts with and without them. What we call
// is declared here from cuBLASLt's documented C API (cublasLt.h of CUDA 12 and 13, whose values
// and signatures these are); enums cross the boundary as int, their C representation.
#pragma once

#include <cuda_runtime_api.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace longctx::cuda::lt {

using Status = int;  // cublasStatus_t
using Handle = struct cublasLtContext*;
using MatmulDesc = struct cublasLtMatmulDescOpaque*;
using MatrixLayout = struct cublasLtMatrixLayoutOpaque*;
using MatmulPreference = struct cublasLtMatmulPreferenceOpaque*;
struct MatmulAlgo {
  uint64_t data[8];
};
struct HeuristicResult {  // cublasLtMatmulHeuristicResult_t
  MatmulAlgo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

constexpr Status kSuccess = 0;             // CUBLAS_STATUS_SUCCESS
constexpr int kCompute32F = 68;            // CUBLAS_COMPUTE_32F
constexpr int kOpN = 0, kOpT = 1;          // cublasOperation_t
constexpr int kDescTransA = 3;             // CUBLASLT_MATMUL_DESC_TRANSA
constexpr int kDescTransB = 4;             // CUBLASLT_MATMUL_DESC_TRANSB
constexpr int kPrefMaxWorkspaceBytes = 1;  // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64)
constexpr int kPrefMinAlignmentA = 5;      // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32)
constexpr int kPrefMinAlignmentB = 6;
constexpr int kPrefMinAlignmentC = 7;
constexpr int kPrefMinAlignmentD = 8;

struct Api {
  Status (*Create)(Handle*);
  size_t (*GetVersion)();
  const char* (*GetStatusString)(Status);
  Status (*MatmulDescCreate)(MatmulDesc*, int compute_type, cudaDataType_t scale_type);
  Status (*MatmulDescDestroy)(MatmulDesc);
  Status (*MatmulDescSetAttribute)(MatmulDesc, int attribute, const void* value, size_t bytes);
  Status (*MatrixLayoutCreate)(MatrixLayout*, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*MatrixLayoutDestroy)(MatrixLayout);
  Status (*MatmulPreferenceCreate)(MatmulPreference*);
  Status (*MatmulPreferenceDestroy)(MatmulPreference);
  Status (*MatmulPreferenceSetAttribute)(MatmulPreference, int attribute, const void* value, size_t bytes);
  Status (*MatmulAlgoGetHeuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c,
                                   MatrixLayout d, MatmulPreference, int requested, HeuristicResult* results,
                                   int* returned);
  Status (*Matmul)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout a_layout, const void* b,
                   MatrixLayout b_layout, const void* beta, const void* c, MatrixLayout c_layout, void* d,
                   MatrixLayout d_layout, const MatmulAlgo* algo, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream);
};

struct Library {
  const Api* api = nullptr;  // null when cuBLASLt is not usable on this host
  bool found = false;        // the file was opened (it may still lack what we need)
  std::string path;          // where it was opened from
  size_t version = 0;        // cublasLtGetVersion(), e.g. 130100
  std::string error;         // why api is null: where it looked, or what the file lacks
};

// Opened on first call, once per process (thread-safe); never throws.
const Library& CublasLt();

}  // namespace longctx::cuda::lt
