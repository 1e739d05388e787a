// The cuBLASLt path of Gemm (gemm.h), through the library opened at run time (cublaslt_api.h).
//
// cuBLASLt is column-major; a row-major C[m, n] is a column-major Cᵀ[n, m], and
// Cᵀ = op(B)ᵀ · op(A)ᵀ, so the row-major product is the column-major one with the operands
// swapped: A' = B, B' = A, and each operand keeps its own transpose flag.
//
// The algorithm comes from cuBLASLt's heuristic once per shape (and operand alignment), then from
// a cache; it may use a 32 MiB workspace per device, allocated on first use outside the arena
// (train/cuda_backend.cc leaves room for the libraries' memory).
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>

#include "kernels/cuda/cublaslt_api.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"

namespace longctx::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

const lt::Api& Api() { return *lt::CublasLt().api; }

void Check(lt::Status status, const char* what) {
  if (status != lt::kSuccess)
    throw std::runtime_error(std::string("cuBLASLt error in ") + what + ": " + Api().GetStatusString(status));
}

// The largest power of two up to 256 that divides the address: what the heuristic is told.
uint32_t Alignment(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

using ShapeKey = std::tuple<bool, bool, int, int, int, int, int, int, bool, uint32_t, uint32_t, uint32_t>;

// What one device needs: a handle, its workspace and the algorithms chosen so far.
struct DeviceState {
  lt::Handle handle = nullptr;
  void* workspace = nullptr;
  std::map<ShapeKey, std::optional<lt::MatmulAlgo>> algos;  // nullopt: cuBLASLt has none
};

// Guards the states and their algorithm caches; never held across a launch.
std::mutex& StateMutex() {
  static std::mutex mutex;
  return mutex;
}

// Per device. The workspace is shared by whatever calls Gemm on that device: the worker issues
// every GEMM of a device on its one compute stream, so two never use it at once.
DeviceState& StateFor(int device) {
  static std::map<int, DeviceState> states;
  std::lock_guard<std::mutex> lock(StateMutex());
  DeviceState& state = states[device];
  if (state.handle == nullptr) {
    Check(Api().Create(&state.handle), "cublasLtCreate");
    CUDA_CHECK(cudaMalloc(&state.workspace, kWorkspaceBytes));
  }
  return state;
}

// Frees the descriptors however the call ends.
struct Descriptors {
  lt::MatmulDesc op = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;
  lt::MatmulPreference preference = nullptr;
  ~Descriptors() {
    const lt::Api& api = Api();
    if (preference) api.MatmulPreferenceDestroy(preference);
    if (c) api.MatrixLayoutDestroy(c);
    if (b) api.MatrixLayoutDestroy(b);
    if (a) api.MatrixLayoutDestroy(a);
    if (op) api.MatmulDescDestroy(op);
  }
};

}  // namespace

bool HaveCublasLt() { return lt::CublasLt().api != nullptr; }

bool GemmCublasLt(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const bf16* a, int lda,
                  const bf16* b, int ldb, float beta, void* c, bool c_bf16, int ldc, cudaStream_t stream) {
  const lt::Api& api = Api();
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  DeviceState& state = StateFor(device);

  Descriptors d;
  Check(api.MatmulDescCreate(&d.op, lt::kCompute32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const int op_first = trans_b ? lt::kOpT : lt::kOpN;   // A' = B
  const int op_second = trans_a ? lt::kOpT : lt::kOpN;  // B' = A
  Check(api.MatmulDescSetAttribute(d.op, lt::kDescTransA, &op_first, sizeof(op_first)), "set TRANSA");
  Check(api.MatmulDescSetAttribute(d.op, lt::kDescTransB, &op_second, sizeof(op_second)), "set TRANSB");
  // Stored shapes, column-major: B row-major [k][n] is column-major n×k; [n][k] is k×n.
  Check(api.MatrixLayoutCreate(&d.a, CUDA_R_16BF, trans_b ? k : n, trans_b ? n : k, ldb), "layout B");
  Check(api.MatrixLayoutCreate(&d.b, CUDA_R_16BF, trans_a ? m : k, trans_a ? k : m, lda), "layout A");
  Check(api.MatrixLayoutCreate(&d.c, c_bf16 ? CUDA_R_16BF : CUDA_R_32F, n, m, ldc), "layout C");

  const uint32_t align_a = Alignment(b), align_b = Alignment(a), align_c = Alignment(c);
  const ShapeKey key{trans_a, trans_b, m, n, k, lda, ldb, ldc, c_bf16, align_a, align_b, align_c};
  std::optional<lt::MatmulAlgo> algo;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(StateMutex());
    auto found = state.algos.find(key);
    if (found != state.algos.end()) {
      algo = found->second;
      known = true;
    }
  }
  if (!known) {
    Check(api.MatmulPreferenceCreate(&d.preference), "cublasLtMatmulPreferenceCreate");
    const uint64_t workspace = kWorkspaceBytes;
    Check(api.MatmulPreferenceSetAttribute(d.preference, lt::kPrefMaxWorkspaceBytes, &workspace,
                                           sizeof(workspace)),
          "set MAX_WORKSPACE_BYTES");
    Check(api.MatmulPreferenceSetAttribute(d.preference, lt::kPrefMinAlignmentA, &align_a, sizeof(align_a)),
          "set MIN_ALIGNMENT_A_BYTES");
    Check(api.MatmulPreferenceSetAttribute(d.preference, lt::kPrefMinAlignmentB, &align_b, sizeof(align_b)),
          "set MIN_ALIGNMENT_B_BYTES");
    Check(api.MatmulPreferenceSetAttribute(d.preference, lt::kPrefMinAlignmentC, &align_c, sizeof(align_c)),
          "set MIN_ALIGNMENT_C_BYTES");
    Check(api.MatmulPreferenceSetAttribute(d.preference, lt::kPrefMinAlignmentD, &align_c, sizeof(align_c)),
          "set MIN_ALIGNMENT_D_BYTES");
    lt::HeuristicResult result{};
    int returned = 0;
    Check(api.MatmulAlgoGetHeuristic(state.handle, d.op, d.a, d.b, d.c, d.c, d.preference, 1, &result,
                                     &returned),
          "cublasLtMatmulAlgoGetHeuristic");
    // None (an alignment or shape it has no kernel for): the caller runs the tiled kernel.
    if (returned > 0) algo = result.algo;
    std::lock_guard<std::mutex> lock(StateMutex());
    state.algos.emplace(key, algo);
  }
  if (!algo) return false;
  Check(api.Matmul(state.handle, d.op, &alpha, b, d.a, a, d.b, &beta, c, d.c, c, d.c, &*algo, state.workspace,
                   kWorkspaceBytes, stream),
        "cublasLtMatmul");
  return true;
}

}  // namespace longctx::cuda
