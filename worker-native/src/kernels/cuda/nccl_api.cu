#include "kernels/cuda/nccl_api.h"
#include "platform/shared_library.h"

namespace longctx::cuda::nccl {

namespace {

Library Load() {
  static platform::SharedLibrary shared = platform::SharedLibrary::Open({"libnccl.so.2"});
  Library library;
  if (!shared.loaded()) {
    library.error = shared.error();
    return library;
  }
  library.found = true;
  library.path = shared.path();
  static Api api;
  platform::SymbolBinder bind(shared);
  bind.Bind(api.GetVersion, "ncclGetVersion");
  bind.Bind(api.GetErrorString, "ncclGetErrorString");
  bind.Bind(api.GetUniqueId, "ncclGetUniqueId");
  bind.Bind(api.CommInitRank, "ncclCommInitRank");
  bind.Bind(api.CommDestroy, "ncclCommDestroy");
  bind.Bind(api.CommAbort, "ncclCommAbort");
  bind.Bind(api.CommGetAsyncError, "ncclCommGetAsyncError");
  bind.Bind(api.AllReduce, "ncclAllReduce");
  bind.Bind(api.Send, "ncclSend");
  bind.Bind(api.Recv, "ncclRecv");
  bind.Bind(api.GroupStart, "ncclGroupStart");
  bind.Bind(api.GroupEnd, "ncclGroupEnd");
  if (!bind.error().empty()) {
    library.error = bind.error();
    return library;
  }
  if (api.GetVersion(&library.version) != kSuccess || library.version < 21000) {
    // Point-to-point send/recv in groups arrived in 2.7; ncclCommGetAsyncError's use with
    // ncclCommAbort is settled from 2.10 on.
    library.error =
        library.path + " reports version " + std::to_string(library.version) + ", older than 2.10";
    return library;
  }
  library.api = &api;
  return library;
}

}  // namespace

const Library& Nccl() {
  static const Library library = Load();
  return library;
}

}  // namespace longctx::cuda::nccl
