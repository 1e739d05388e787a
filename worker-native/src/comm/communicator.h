// The communicator: how the ranks of one job talk to each other on CPU, over gloo's TCP transport.
//
// Ranks find each other through a rendezvous on Redis under a per-attempt prefix
// ("longctx/<job>/<attempt>"), so a restarted job never reads its previous attempt's addresses and two
// jobs on one Redis never meet. Every operation is bounded by the communicator's timeout: a peer that
// died or never comes makes the operation throw CommError within that time, naming what was waited
// for, instead of hanging.
//
// The ring attention calls this directly from native code: ISend/IRecv post a transfer and return at
// once, the caller computes, then Wait()s; bytes_sent() and wait_seconds() tell how well the exchange
// was hidden behind the compute.
//
// Thread-safety: every method may be called from any thread, also concurrently. Collectives (Barrier,
// AllReduceSum) are serialized internally and must be issued in the same order on every rank; two
// threads racing to issue collectives get whichever order the lock gives them, so issue them from one
// thread or order them yourself (the JavaScript binding orders them by call). Point-to-point transfers
// may run concurrently with each other and with a collective; transfers with the same (peer, tag, byte
// count) are matched in the order they were posted. A PendingTransfer is waited by one thread.
//
// The process must ignore SIGPIPE (Node does): gloo writes to sockets whose peer may have died.
//
// Failure model: the first failure (timeout, lost peer) makes the communicator unusable; later calls
// throw CommError quoting that first failure. Recovery is a new attempt: a new process group with a
// new prefix.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace gloo {
class Context;
namespace transport {
class UnboundBuffer;
}
}  // namespace gloo

namespace longctx::comm {

// Every failure of a communicator: bad options, rendezvous timeout, lost peer, operation timeout.
class CommError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CommOptions {
  int rank = -1;
  int size = 0;
  std::string redis_host = "127.0.0.1";
  int redis_port = 6379;
  // Names the job and its attempt, e.g. "longctx/<job>/<attempt>"; every rendezvous key lives under it.
  std::string prefix;
  // The address this rank's TCP listeners bind to; peers connect to it.
  std::string bind_host = "127.0.0.1";
  // Bounds the rendezvous and every operation.
  std::chrono::milliseconds timeout{30000};
};

// Largest tag a point-to-point transfer may carry, and largest transfer in bytes: both are folded into
// the gloo slot so that a send and a recv only match when tag AND size agree (see communicator.cc).
constexpr uint32_t kMaxTag = 0xffff;
constexpr uint64_t kMaxTransferBytes = (uint64_t{1} << 40) - 1;

struct CommStats {
  uint64_t bytes_sent = 0;      // point-to-point payload bytes of completed sends
  uint64_t bytes_received = 0;  // point-to-point payload bytes of completed recvs
  double wait_seconds = 0;      // time callers spent blocked in Wait, Send, Recv, Barrier, AllReduceSum
};

class Communicator;

// A send or recv that was posted and may still be in flight. The buffer it names must stay valid and
// untouched until Wait() returns. It must not outlive its Communicator.
class PendingTransfer {
 public:
  enum class Kind { kSend, kRecv };

  PendingTransfer(const PendingTransfer&) = delete;
  PendingTransfer& operator=(const PendingTransfer&) = delete;
  // Never blocks. Dropping a transfer that has not completed abandons it: gloo stops touching the
  // buffer, and the communicator becomes unusable (the stream to that peer is out of step).
  ~PendingTransfer();

  // Blocks until the transfer completed (then returns at once on later calls), or throws CommError
  // when the timeout passes or the peer is lost.
  void Wait();

  Kind kind() const { return kind_; }
  int peer() const { return peer_; }
  uint32_t tag() const { return tag_; }
  size_t bytes() const { return bytes_; }
  bool waited() const { return waited_; }

 private:
  friend class Communicator;
  PendingTransfer(Communicator* comm, Kind kind, int peer, uint32_t tag, size_t bytes,
                  std::unique_ptr<gloo::transport::UnboundBuffer> buffer);
  std::string Describe() const;  // "recv from rank 2 (tag 5, 4096 bytes)"

  Communicator* comm_;
  Kind kind_;
  int peer_;
  uint32_t tag_;
  size_t bytes_;
  std::unique_ptr<gloo::transport::UnboundBuffer> buffer_;
  bool waited_ = false;
};

class Communicator {
 public:
  // Rendezvous with the other size-1 ranks and connect to all of them. Throws CommError naming the
  // option at fault, or the ranks that never arrived within the timeout.
  static std::unique_ptr<Communicator> Connect(const CommOptions& options);

  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  ~Communicator();  // closes the connections; in-flight transfers of peers then fail on their side

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& prefix() const { return prefix_; }
  // The Redis of the rendezvous: what a GPU communicator (NCCL) meets through as well.
  const std::string& redis_host() const { return redis_host_; }
  int redis_port() const { return redis_port_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Returns once every rank has entered the barrier.
  void Barrier();
  // In place: data[i] becomes the sum over ranks of data[i]. Every rank passes the same count; every
  // rank ends with bitwise identical results (each element is summed once, then broadcast).
  void AllReduceSum(float* data, size_t count);
  void AllReduceSum(double* data, size_t count);

  // Blocking point-to-point transfers of raw bytes; a send matches the recv with the same tag and size.
  void Send(int peer, const void* data, size_t bytes, uint32_t tag);
  void Recv(int peer, void* data, size_t bytes, uint32_t tag);
  // Posted transfers, to overlap communication with compute. The transfer starts moving as soon as
  // both sides have posted; Wait() only collects the outcome.
  std::unique_ptr<PendingTransfer> ISend(int peer, const void* data, size_t bytes, uint32_t tag);
  std::unique_ptr<PendingTransfer> IRecv(int peer, void* data, size_t bytes, uint32_t tag);

  uint64_t bytes_sent() const { return bytes_sent_.load(); }
  double wait_seconds() const { return wait_nanos_.load() * 1e-9; }
  CommStats stats() const;

  // Empty while usable; otherwise the first failure, which every later call repeats.
  std::string failure() const;

 private:
  friend class PendingTransfer;
  Communicator(const CommOptions& options, std::shared_ptr<gloo::Context> context,
               std::map<std::string, int> peer_addresses);

  enum class CollectiveKind : uint64_t;  // mixed into each collective's gloo tag (communicator.cc)
  template <typename T>
  void AllReduceSumOf(T* data, size_t count, CollectiveKind kind, const char* type_name);
  std::unique_ptr<PendingTransfer> Post(PendingTransfer::Kind kind, int peer, void* data, size_t bytes,
                                        uint32_t tag);
  void CheckPeer(int peer, const char* op) const;
  void ThrowIfFailed() const;
  // Keeps the first failure; every later call reports it.
  void RecordFailure(const std::string& message);
  // Turns a gloo exception into a CommError saying what was waited for and why it failed (timeout, with
  // `timeout_hint`; lost connection, naming the peer's rank), records it as a failure, and throws it.
  [[noreturn]] void Fail(const std::string& what, const std::exception& error, const char* timeout_hint);
  std::string Where() const;  // "rank 1 of 4 in 'longctx/job/1'"

  const int rank_;
  const int size_;
  const std::string prefix_;
  const std::string redis_host_;
  const int redis_port_;
  const std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::Context> context_;
  // "[127.0.0.1]:40123" → rank, to name the peer in gloo's connection errors.
  const std::map<std::string, int> peer_addresses_;

  std::mutex collective_mutex_;  // one collective at a time, in program order
  uint32_t collective_seq_ = 0;  // guarded by collective_mutex_

  mutable std::mutex failure_mutex_;
  std::string failure_;

  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<int64_t> wait_nanos_{0};
};

}  // namespace longctx::comm
