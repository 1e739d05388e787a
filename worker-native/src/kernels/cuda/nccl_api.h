// NCCL, opened at run time (platform/shared_library.h): the build machines have no NCCL headers
// or library, and one build must run on GPU hosts with and without it. What we call is declared
// here from NCCL's documented C API (nccl.h, 2.x); enums cross the boundary as int.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace longctx::cuda::nccl {

using Result = int;  // ncclResult_t
using Comm = struct ncclComm*;
struct UniqueId {  // ncclUniqueId: NCCL_UNIQUE_ID_BYTES = 128
  char internal[128];
};

constexpr Result kSuccess = 0;     // ncclSuccess
constexpr Result kInProgress = 7;  // ncclInProgress
constexpr int kUint8 = 1;          // ncclUint8
constexpr int kFloat32 = 7;        // ncclFloat32
constexpr int kSum = 0;            // ncclSum

struct Api {
  Result (*GetVersion)(int* version);
  const char* (*GetErrorString)(Result);
  Result (*GetUniqueId)(UniqueId* id);
  Result (*CommInitRank)(Comm* comm, int nranks, UniqueId id, int rank);
  Result (*CommDestroy)(Comm);
  Result (*CommAbort)(Comm);
  Result (*CommGetAsyncError)(Comm, Result* async_error);
  Result (*AllReduce)(const void* send, void* recv, size_t count, int type, int op, Comm, cudaStream_t);
  Result (*Send)(const void* send, size_t count, int type, int peer, Comm, cudaStream_t);
  Result (*Recv)(void* recv, size_t count, int type, int peer, Comm, cudaStream_t);
  Result (*GroupStart)();
  Result (*GroupEnd)();
};

struct Library {
  const Api* api = nullptr;  // null when NCCL is not usable on this host
  bool found = false;        // the file was opened (it may still lack what we need)
  std::string path;
  int version = 0;    // ncclGetVersion(), e.g. 22703 for 2.27.3
  std::string error;  // why api is null: where it looked, or what the file lacks
};

// Opened on first call, once per process (thread-safe); never throws.
const Library& Nccl();

}  // namespace longctx::cuda::nccl
