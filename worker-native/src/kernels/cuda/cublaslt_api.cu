#include "kernels/cuda/cublaslt_api.h"
#include "platform/shared_library.h"

namespace longctx::cuda::lt {

namespace {

Library Load() {
  // CUDA 13's soname first, then CUDA 12's: the calls we make are the same in both.
  static platform::SharedLibrary shared =
      platform::SharedLibrary::Open({"libcublasLt.so.13", "libcublasLt.so.12"});
  Library library;
  if (!shared.loaded()) {
    library.error = shared.error();
    return library;
  }
  library.found = true;
  library.path = shared.path();
  static Api api;
  platform::SymbolBinder bind(shared);
  bind.Bind(api.Create, "cublasLtCreate");
  bind.Bind(api.GetVersion, "cublasLtGetVersion");
  bind.Bind(api.GetStatusString, "cublasLtGetStatusString");
  bind.Bind(api.MatmulDescCreate, "cublasLtMatmulDescCreate");
  bind.Bind(api.MatmulDescDestroy, "cublasLtMatmulDescDestroy");
  bind.Bind(api.MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
  bind.Bind(api.MatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
  bind.Bind(api.MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
  bind.Bind(api.MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
  bind.Bind(api.MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
  bind.Bind(api.MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
  bind.Bind(api.MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
  bind.Bind(api.Matmul, "cublasLtMatmul");
  if (!bind.error().empty()) {
    library.error = bind.error();
    return library;
  }
  library.version = api.GetVersion();
  // cublasLt.h of CUDA 12.0 is the oldest whose declarations ours follow.
  if (library.version < 120000) {
    library.error = library.path + " is version " + std::to_string(library.version) + ", older than 12.0";
    return library;
  }
  library.api = &api;
  return library;
}

}  // namespace

const Library& CublasLt() {
  static const Library library = Load();
  return library;
}

}  // namespace longctx::cuda::lt
