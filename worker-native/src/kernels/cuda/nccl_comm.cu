#include <cuda_runtime.h>
#include <hiredis/hiredis.h>

#include <cstring>
#include <future>
#include <stdexcept>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/nccl_comm.h"

namespace longctx::cuda {

namespace {

using comm::CommError;
using Clock = std::chrono::steady_clock;

std::string Describe(const nccl::Api& api, nccl::Result result) {
  return std::string(api.GetErrorString(result)) + " (ncclResult " + std::to_string(result) + ")";
}

void Check(const nccl::Api& api, nccl::Result result, const char* what) {
  if (result != nccl::kSuccess)
    throw CommError(std::string("NCCL error in ") + what + ": " + Describe(api, result));
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
nccl::UniqueId ExchangeUniqueId(const nccl::Api& api, const NcclOptions& o) {
  RedisConnection redis;
  timeval tv{static_cast<long>(o.timeout.count() / 1000),
             static_cast<long>((o.timeout.count() % 1000) * 1000)};
  redis.ctx = redisConnectWithTimeout(o.redis_host.c_str(), o.redis_port, tv);
  if (redis.ctx == nullptr || redis.ctx->err)
    throw CommError("NCCL rendezvous: cannot reach Redis at " + o.redis_host + ":" +
                    std::to_string(o.redis_port) + (redis.ctx ? std::string(": ") + redis.ctx->errstr : ""));
  const std::string key = o.prefix + "/nccl-unique-id";
  nccl::UniqueId id;
  if (o.rank == 0) {
    Check(api, api.GetUniqueId(&id), "ncclGetUniqueId");
    const long long expiry_s = o.timeout.count() / 1000 + 3600;
    Reply set;
    set.r = static_cast<redisReply*>(redisCommand(redis.ctx, "SET %s %b EX %lld", key.c_str(), id.internal,
                                                  sizeof(id.internal), expiry_s));
    if (set.r == nullptr || set.r->type == REDIS_REPLY_ERROR)
      throw CommError("NCCL rendezvous: SET " + key + " failed");
    return id;
  }
  const auto deadline = Clock::now() + o.timeout;
  while (true) {
    Reply get;
    get.r = static_cast<redisReply*>(redisCommand(redis.ctx, "GET %s", key.c_str()));
    if (get.r == nullptr) throw CommError("NCCL rendezvous: GET " + key + " lost the Redis connection");
    if (get.r->type == REDIS_REPLY_STRING) {
      if (get.r->len != sizeof(id.internal))
        throw CommError("NCCL rendezvous: " + key + " holds " + std::to_string(get.r->len) +
                        " bytes, not a " + std::to_string(sizeof(id.internal)) + "-byte unique id");
      std::memcpy(id.internal, get.r->str, sizeof(id.internal));
      return id;
    }
    if (Clock::now() > deadline)
      throw CommError("NCCL rendezvous: rank 0 did not publish " + key + " within " +
                      std::to_string(o.timeout.count()) + " ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

constexpr auto kWatchInterval = std::chrono::milliseconds(20);

}  // namespace

std::unique_ptr<NcclCollectives> NcclCollectives::Connect(const NcclOptions& o, cudaStream_t compute) {
  const nccl::Library& library = nccl::Nccl();
  if (library.api == nullptr) throw CommError(library.error);
  const nccl::Api& api = *library.api;
  if (o.size < 1) throw std::invalid_argument("NCCL: size must be at least 1, got " + std::to_string(o.size));
  if (o.rank < 0 || o.rank >= o.size)
    throw std::invalid_argument("NCCL: rank " + std::to_string(o.rank) + " is outside [0, " +
                                std::to_string(o.size) + ")");
  if (o.prefix.empty()) throw std::invalid_argument("NCCL: prefix must name the job attempt");
  const nccl::UniqueId id = ExchangeUniqueId(api, o);
  // ncclCommInitRank waits for every rank and has no timeout of its own: it runs on a thread of
  // its own, and a rank that never comes makes this one fail after the timeout (the stuck thread
  // goes with the process, which exits on the error).
  auto init = std::make_shared<std::promise<std::pair<nccl::Result, nccl::Comm>>>();
  std::future<std::pair<nccl::Result, nccl::Comm>> result = init->get_future();
  std::thread([init, &api, id, o] {
    nccl::Comm comm = nullptr;
    if (cudaSetDevice(o.device) != cudaSuccess) {
      init->set_value({-1, nullptr});
      return;
    }
    const nccl::Result r = api.CommInitRank(&comm, o.size, id, o.rank);
    init->set_value({r, comm});
  }).detach();
  if (result.wait_for(o.timeout) != std::future_status::ready)
    throw CommError("NCCL: ncclCommInitRank did not complete within " + std::to_string(o.timeout.count()) +
                    " ms (rank " + std::to_string(o.rank) + " of " + std::to_string(o.size) + " in '" +
                    o.prefix + "'; a rank missing?)");
  const auto [status, comm] = result.get();
  if (status == -1) throw CommError("NCCL: cudaSetDevice(" + std::to_string(o.device) + ") failed");
  Check(api, status, "ncclCommInitRank");
  return std::unique_ptr<NcclCollectives>(new NcclCollectives(comm, o, compute));
}

NcclCollectives::NcclCollectives(nccl::Comm comm, const NcclOptions& options, cudaStream_t compute)
    : api_(*nccl::Nccl().api), comm_(comm), options_(options), compute_(compute) {
  CUDA_CHECK(cudaSetDevice(options_.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&exchange_, cudaEventDisableTiming));
  watchdog_ = std::thread([this] { Watch(); });
}

NcclCollectives::~NcclCollectives() {
  // Wait for what is in flight while the watchdog still runs: an operation a dead peer holds up is
  // aborted after the timeout instead of hanging here.
  cudaSetDevice(options_.device);
  cudaStreamSynchronize(stream_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  watchdog_.join();
  if (!aborted_) api_.CommDestroy(comm_);
  for (InFlight& op : in_flight_) {
    cudaEventDestroy(op.started);
    if (op.done) cudaEventDestroy(op.done);
  }
  cudaEventDestroy(exchange_);
  cudaEventDestroy(ready_);
  cudaStreamDestroy(stream_);
}

std::string NcclCollectives::description() const { return AutoCollectivesDescription(); }

void NcclCollectives::ThrowIfFailed() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_.empty()) throw CommError(failure_);
}

cudaEvent_t NcclCollectives::Begin(const std::string& what) {
  ThrowIfFailed();
  CUDA_CHECK(cudaEventRecord(ready_, compute_));
  CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
  InFlight op;
  op.what = what;
  CUDA_CHECK(cudaEventCreateWithFlags(&op.started, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventRecord(op.started, stream_));
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_.push_back(op);
  return op.started;
}

cudaEvent_t NcclCollectives::End() {
  cudaEvent_t done = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventRecord(done, stream_));
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_.back().done = done;
  return done;
}

void NcclCollectives::AllReduceSum(float* data, size_t count) {
  if (count == 0) return;
  Begin("all-reduce of " + std::to_string(count) + " floats");
  Check(api_, api_.AllReduce(data, data, count, nccl::kFloat32, nccl::kSum, comm_, stream_), "ncclAllReduce");
  CUDA_CHECK(cudaStreamWaitEvent(compute_, End(), 0));
}

void NcclCollectives::StartSendRecv(const void* send, size_t send_bytes, int to, void* recv,
                                    size_t recv_bytes, int from, uint32_t tag) {
  Begin("ring exchange (tag " + std::to_string(tag) + ": " + std::to_string(send_bytes) + " bytes to rank " +
        std::to_string(to) + ", " + std::to_string(recv_bytes) + " from rank " + std::to_string(from) + ")");
  // NCCL matches sends and receives by order per peer, not by tag: every rank issues the ring's
  // exchanges in the same order, so they pair up.
  Check(api_, api_.GroupStart(), "ncclGroupStart");
  if (send_bytes > 0) Check(api_, api_.Send(send, send_bytes, nccl::kUint8, to, comm_, stream_), "ncclSend");
  if (recv_bytes > 0)
    Check(api_, api_.Recv(recv, recv_bytes, nccl::kUint8, from, comm_, stream_), "ncclRecv");
  Check(api_, api_.GroupEnd(), "ncclGroupEnd");
  End();
  CUDA_CHECK(cudaEventRecord(exchange_, stream_));
}

void NcclCollectives::JoinSendRecv() { CUDA_CHECK(cudaStreamWaitEvent(compute_, exchange_, 0)); }

void NcclCollectives::Fail(const std::string& message) {
  // Called by the watchdog with mutex_ held.
  if (failure_.empty()) failure_ = message;
  if (!aborted_.exchange(true)) api_.CommAbort(comm_);
}

void NcclCollectives::Watch() {
  if (cudaSetDevice(options_.device) != cudaSuccess) return;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, kWatchInterval);
    if (aborted_) continue;
    const auto now = Clock::now();
    // In stream order: an operation that has not started means none after it has.
    for (InFlight& op : in_flight_) {
      if (!op.seen_started) {
        if (cudaEventQuery(op.started) != cudaSuccess) break;
        op.seen_started = true;
        op.started_at = now;
      }
      if (op.done != nullptr && cudaEventQuery(op.done) == cudaSuccess) continue;
      if (now - op.started_at > options_.timeout) {
        Fail("NCCL: " + op.what + " did not finish within " + std::to_string(options_.timeout.count()) +
             " ms (rank " + std::to_string(options_.rank) + " of " + std::to_string(options_.size) + " in '" +
             options_.prefix + "'; a peer lost?)");
        break;
      }
      break;  // the first unfinished operation holds up the rest
    }
    while (!in_flight_.empty() && in_flight_.front().done != nullptr &&
           cudaEventQuery(in_flight_.front().done) == cudaSuccess) {
      cudaEventDestroy(in_flight_.front().started);
      cudaEventDestroy(in_flight_.front().done);
      in_flight_.pop_front();
    }
    cudaGetLastError();  // cudaEventQuery's cudaErrorNotReady is not an error here
    nccl::Result async = nccl::kSuccess;
    if (!aborted_ && api_.CommGetAsyncError(comm_, &async) == nccl::kSuccess && async != nccl::kSuccess &&
        async != nccl::kInProgress)
      Fail("NCCL: asynchronous error: " + Describe(api_, async) + " (rank " + std::to_string(options_.rank) +
           ")");
  }
}

}  // namespace longctx::cuda
