#include "kernels/cuda/nccl_comm.h"

namespace longctx::cuda {

bool HaveNccl() {
#ifdef LONGCTX_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

}  // namespace longctx::cuda

#ifdef LONGCTX_HAVE_NCCL
#include <cuda_runtime.h>
#include <hiredis/hiredis.h>

#include <cstring>
#include <stdexcept>
#include <thread>

#include "kernels/cuda/cuda_check.h"

namespace longctx::cuda {

namespace {

void CheckNccl(ncclResult_t result, const char* what) {
  if (result != ncclSuccess)
    throw std::runtime_error(std::string("NCCL error in ") + what + ": " + ncclGetErrorString(result));
}

struct RedisConnection {
  redisContext* ctx = nullptr;
  ~RedisConnection() {
    if (ctx) redisFree(ctx);
  }
};

struct Reply {
  redisReply* r = nullptr;
  ~Reply() {
    if (r) freeReplyObject(r);
  }
};

// Rank 0 publishes the id; the others wait for it.
ncclUniqueId ExchangeUniqueId(const NcclOptions& o) {
  RedisConnection redis;
  timeval tv{static_cast<long>(o.timeout.count() / 1000),
             static_cast<long>((o.timeout.count() % 1000) * 1000)};
  redis.ctx = redisConnectWithTimeout(o.redis_host.c_str(), o.redis_port, tv);
  if (redis.ctx == nullptr || redis.ctx->err)
    throw std::runtime_error("NCCL rendezvous: cannot reach Redis at " + o.redis_host + ":" +
                             std::to_string(o.redis_port) +
                             (redis.ctx ? std::string(": ") + redis.ctx->errstr : ""));
  const std::string key = o.prefix + "/nccl-unique-id";
  ncclUniqueId id;
  if (o.rank == 0) {
    CheckNccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    const long long expiry_s = o.timeout.count() / 1000 + 3600;
    Reply set;
    set.r = static_cast<redisReply*>(redisCommand(redis.ctx, "SET %s %b EX %lld", key.c_str(), id.internal,
                                                  sizeof(id.internal), expiry_s));
    if (set.r == nullptr || set.r->type == REDIS_REPLY_ERROR)
      throw std::runtime_error("NCCL rendezvous: SET " + key + " failed");
    return id;
  }
  const auto deadline = std::chrono::steady_clock::now() + o.timeout;
  while (true) {
    Reply get;
    get.r = static_cast<redisReply*>(redisCommand(redis.ctx, "GET %s", key.c_str()));
    if (get.r == nullptr)
      throw std::runtime_error("NCCL rendezvous: GET " + key + " lost the Redis connection");
    if (get.r->type == REDIS_REPLY_STRING) {
      if (get.r->len != sizeof(id.internal))
        throw std::runtime_error("NCCL rendezvous: " + key + " holds " + std::to_string(get.r->len) +
                                 " bytes, not a " + std::to_string(sizeof(id.internal)) + "-byte unique id");
      std::memcpy(id.internal, get.r->str, sizeof(id.internal));
      return id;
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("NCCL rendezvous: rank 0 did not publish " + key + " within " +
                               std::to_string(o.timeout.count()) + " ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::unique_ptr<NcclCommunicator> NcclCommunicator::Connect(const NcclOptions& o) {
  if (o.size < 1) throw std::invalid_argument("NCCL: size must be at least 1, got " + std::to_string(o.size));
  if (o.rank < 0 || o.rank >= o.size)
    throw std::invalid_argument("NCCL: rank " + std::to_string(o.rank) + " is outside [0, " +
                                std::to_string(o.size) + ")");
  if (o.prefix.empty()) throw std::invalid_argument("NCCL: prefix must name the job attempt");
  CUDA_CHECK(cudaSetDevice(o.device));
  ncclUniqueId id = ExchangeUniqueId(o);
  ncclComm_t comm;
  CheckNccl(ncclCommInitRank(&comm, o.size, id, o.rank), "ncclCommInitRank");
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, o.rank, o.size));
}

NcclCommunicator::~NcclCommunicator() { ncclCommDestroy(comm_); }

void NcclCommunicator::AllReduceSum(float* data, size_t count, cudaStream_t stream) {
  CheckNccl(ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm_, stream), "ncclAllReduce");
}

void NcclCommunicator::SendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes,
                                int from, cudaStream_t stream) {
  CheckNccl(ncclGroupStart(), "ncclGroupStart");
  CheckNccl(ncclSend(send, send_bytes, ncclUint8, to, comm_, stream), "ncclSend");
  CheckNccl(ncclRecv(recv, recv_bytes, ncclUint8, from, comm_, stream), "ncclRecv");
  CheckNccl(ncclGroupEnd(), "ncclGroupEnd");
}

}  // namespace longctx::cuda
#endif  // LONGCTX_HAVE_NCCL
