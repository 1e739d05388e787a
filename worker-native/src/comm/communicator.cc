#include "comm/communicator.h"

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/context.h>
#include <gloo/transport/unbound_buffer.h>

#include <cctype>

#include "comm/rendezvous.h"

namespace longctx::comm {

namespace {

using Clock = std::chrono::steady_clock;

// gloo matches a send with a recv by (peer, 64-bit slot). gloo's collectives build their slots with a
// prefix byte 0x01..0x08 on top; point-to-point transfers use their own prefix and fold in the tag AND
// the byte count. A send and a recv that disagree on the size then never match and both time out with
// a clear error, instead of gloo's network thread aborting the process (recv buffer too small) or
// silently filling half a buffer (too large).
constexpr uint64_t kPointToPointSlotPrefix = 0x40;

uint64_t PointToPointSlot(uint32_t tag, size_t bytes) {
  return (kPointToPointSlotPrefix << 56) | (uint64_t{tag} << 40) | static_cast<uint64_t>(bytes);
}

// The 32-bit gloo tag of the seq-th collective. It mixes in the kind and the element count, so ranks
// that disagree (one in a barrier, another in an all-reduce, or two lengths) match nothing and time out
// instead of exchanging mismatched segments. splitmix64's finalizer: collisions are ~2^-32.
uint32_t CollectiveTag(uint32_t seq, uint64_t kind, uint64_t count) {
  uint64_t z = (uint64_t{seq} << 32) ^ (kind << 56) ^ count;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<uint32_t>(z ^ (z >> 31));
}

// The reduction gloo applies segment by segment: c = a + b, one IEEE addition per element.
template <typename T>
void SumInto(void* c, const void* a, const void* b, size_t n) {
  T* out = static_cast<T*>(c);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] + y[i];
}

// Adds the time a caller was blocked to the communicator's total when the scope ends.
class BlockedTimer {
 public:
  explicit BlockedTimer(std::atomic<int64_t>& total) : total_(total), start_(Clock::now()) {}
  ~BlockedTimer() {
    total_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
  }

 private:
  std::atomic<int64_t>& total_;
  Clock::time_point start_;
};

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// True when `address` ("[127.0.0.1]:40123$2") occurs in `text` as a whole (not as the start of "$21").
bool MentionsAddress(const std::string& text, const std::string& address) {
  for (size_t at = text.find(address); at != std::string::npos; at = text.find(address, at + 1)) {
    const size_t end = at + address.size();
    if (end == text.size() || !std::isdigit(static_cast<unsigned char>(text[end]))) return true;
  }
  return false;
}

}  // namespace

enum class Communicator::CollectiveKind : uint64_t {
  kBarrier = 1,
  kAllReduceSumF32 = 2,
  kAllReduceSumF64 = 3
};

// --- PendingTransfer ---------------------------------------------------------------------------------

PendingTransfer::PendingTransfer(Communicator* comm, Kind kind, int peer, uint32_t tag, size_t bytes,
                                 std::unique_ptr<gloo::transport::UnboundBuffer> buffer)
    : comm_(comm), kind_(kind), peer_(peer), tag_(tag), bytes_(bytes), buffer_(std::move(buffer)) {}

std::string PendingTransfer::Describe() const {
  return std::string(kind_ == Kind::kSend ? "send to" : "recv from") + " rank " + std::to_string(peer_) +
         " (tag " + std::to_string(tag_) + ", " + std::to_string(bytes_) + " bytes)";
}

void PendingTransfer::Wait() {
  if (waited_) {
    comm_->ThrowIfFailed();  // a transfer whose wait failed keeps failing
    return;
  }
  waited_ = true;
  {
    BlockedTimer timer(comm_->wait_nanos_);
    try {
      if (kind_ == Kind::kSend) {
        buffer_->waitSend(comm_->timeout_);
      } else {
        buffer_->waitRecv(comm_->timeout_);
      }
    } catch (const std::exception& e) {
      comm_->Fail(Describe(), e,
                  kind_ == Kind::kSend ? "the peer did not post the matching recv (same tag and byte count)"
                                       : "the peer did not post the matching send (same tag and byte count)");
    }
  }
  (kind_ == Kind::kSend ? comm_->bytes_sent_ : comm_->bytes_received_) += bytes_;
}

PendingTransfer::~PendingTransfer() {
  if (waited_) return;
  // Collect a transfer that already completed; a zero timeout never blocks. One that has not completed
  // is abandoned: the zero-timeout wait makes gloo close this rank's connections (gloo then never
  // touches the buffer again), and the communicator records why it is unusable.
  try {
    const auto now = std::chrono::milliseconds(0);
    if (kind_ == Kind::kSend ? buffer_->waitSend(now) : buffer_->waitRecv(now)) {
      (kind_ == Kind::kSend ? comm_->bytes_sent_ : comm_->bytes_received_) += bytes_;
      return;
    }
  } catch (const std::exception&) {
  }
  comm_->RecordFailure(Describe() + " was dropped before it completed [" + comm_->Where() + "]");
}

// --- Communicator ------------------------------------------------------------------------------------

std::unique_ptr<Communicator> Communicator::Connect(const CommOptions& options) {
  Mesh mesh = Rendezvous(options);
  return std::unique_ptr<Communicator>(
      new Communicator(options, std::move(mesh.context), std::move(mesh.peer_addresses)));
}

Communicator::Communicator(const CommOptions& options, std::shared_ptr<gloo::Context> context,
                           std::map<std::string, int> peer_addresses)
    : rank_(options.rank),
      size_(options.size),
      prefix_(options.prefix),
      redis_host_(options.redis_host),
      redis_port_(options.redis_port),
      timeout_(options.timeout),
      context_(std::move(context)),
      peer_addresses_(std::move(peer_addresses)) {}

Communicator::~Communicator() = default;

std::string Communicator::Where() const {
  return "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " in '" + prefix_ + "'";
}

CommStats Communicator::stats() const { return {bytes_sent_.load(), bytes_received_.load(), wait_seconds()}; }

std::string Communicator::failure() const {
  std::lock_guard<std::mutex> lock(failure_mutex_);
  return failure_;
}

void Communicator::ThrowIfFailed() const {
  std::string first = failure();
  if (!first.empty()) throw CommError("communicator unusable after an earlier failure: " + first);
}

void Communicator::RecordFailure(const std::string& message) {
  std::lock_guard<std::mutex> lock(failure_mutex_);
  if (failure_.empty()) failure_ = message;
}

void Communicator::Fail(const std::string& what, const std::exception& error, const char* timeout_hint) {
  const std::string message = detail::GlooMessage(error);
  std::string reason;
  if (Contains(message, "Timed out waiting")) {
    reason = "timed out after " + detail::FormatSeconds(timeout_) + ": " + timeout_hint;
  } else if (Contains(message, "Application timeout caused pair closure")) {
    // Another operation of this rank timed out first; gloo then closes every connection.
    const std::string first = failure();
    reason =
        "was aborted because another operation of this rank failed" + (first.empty() ? "" : ": " + first);
  } else {
    for (const auto& [address, peer] : peer_addresses_) {
      if (MentionsAddress(message, address)) {
        reason = "lost the connection to rank " + std::to_string(peer) + " (" + message + ")";
        break;
      }
    }
    if (reason.empty()) reason = "failed: " + message;
  }
  const std::string full = what + " " + reason + " [" + Where() + "]";
  RecordFailure(full);
  throw CommError(full);
}

void Communicator::CheckPeer(int peer, const char* op) const {
  if (peer < 0 || peer >= size_ || peer == rank_) {
    throw CommError(std::string(op) + ": peer must be a rank in [0, " + std::to_string(size_) +
                    ") other than this rank (" + std::to_string(rank_) + "), got " + std::to_string(peer));
  }
}

void Communicator::Barrier() {
  std::lock_guard<std::mutex> lock(collective_mutex_);
  ThrowIfFailed();
  const uint32_t seq = ++collective_seq_;
  BlockedTimer timer(wait_nanos_);
  try {
    gloo::BarrierOptions opts(context_);
    opts.setTag(CollectiveTag(seq, static_cast<uint64_t>(CollectiveKind::kBarrier), 0));
    opts.setTimeout(timeout_);
    gloo::barrier(opts);
  } catch (const std::exception& e) {
    Fail("barrier #" + std::to_string(seq), e, "a rank is missing, stuck, or in a different collective");
  }
}

template <typename T>
void Communicator::AllReduceSumOf(T* data, size_t count, CollectiveKind kind, const char* type_name) {
  std::lock_guard<std::mutex> lock(collective_mutex_);
  ThrowIfFailed();
  // Counted even when empty, so every rank's sequence stays in step.
  const uint32_t seq = ++collective_seq_;
  if (count == 0) return;
  if (data == nullptr)
    throw CommError("AllReduceSum: data is null for " + std::to_string(count) + " elements");
  BlockedTimer timer(wait_nanos_);
  try {
    gloo::AllreduceOptions opts(context_);
    opts.setOutput(data, count);
    opts.setReduceFunction(&SumInto<T>);
    opts.setTag(CollectiveTag(seq, static_cast<uint64_t>(kind), count));
    opts.setTimeout(timeout_);
    gloo::allreduce(opts);
  } catch (const std::exception& e) {
    Fail("all-reduce #" + std::to_string(seq) + " (" + std::to_string(count) + " " + type_name + ")", e,
         "a rank is missing, stuck, in a different collective, or passed a different length");
  }
}

void Communicator::AllReduceSum(float* data, size_t count) {
  AllReduceSumOf(data, count, CollectiveKind::kAllReduceSumF32, "float32");
}

void Communicator::AllReduceSum(double* data, size_t count) {
  AllReduceSumOf(data, count, CollectiveKind::kAllReduceSumF64, "float64");
}

std::unique_ptr<PendingTransfer> Communicator::Post(PendingTransfer::Kind kind, int peer, void* data,
                                                    size_t bytes, uint32_t tag) {
  const char* op = kind == PendingTransfer::Kind::kSend ? "send" : "recv";
  CheckPeer(peer, op);
  if (tag > kMaxTag) {
    throw CommError(std::string(op) + ": tag must be in 0.." + std::to_string(kMaxTag) + ", got " +
                    std::to_string(tag));
  }
  if (bytes > kMaxTransferBytes) {
    throw CommError(std::string(op) + ": " + std::to_string(bytes) + " bytes is more than the " +
                    std::to_string(kMaxTransferBytes) + " one transfer may carry");
  }
  if (data == nullptr && bytes > 0) throw CommError(std::string(op) + ": data is null");
  ThrowIfFailed();
  auto transfer = std::unique_ptr<PendingTransfer>(
      new PendingTransfer(this, kind, peer, tag, bytes, context_->createUnboundBuffer(data, bytes)));
  try {
    if (kind == PendingTransfer::Kind::kSend) {
      transfer->buffer_->send(peer, PointToPointSlot(tag, bytes));
    } else {
      transfer->buffer_->recv(peer, PointToPointSlot(tag, bytes));
    }
  } catch (const std::exception& e) {
    transfer->waited_ = true;  // never posted: nothing to collect or abandon
    Fail(transfer->Describe(), e, "");
  }
  return transfer;
}

std::unique_ptr<PendingTransfer> Communicator::ISend(int peer, const void* data, size_t bytes, uint32_t tag) {
  // gloo's buffers are read-write; a send only ever reads this one.
  return Post(PendingTransfer::Kind::kSend, peer, const_cast<void*>(data), bytes, tag);
}

std::unique_ptr<PendingTransfer> Communicator::IRecv(int peer, void* data, size_t bytes, uint32_t tag) {
  return Post(PendingTransfer::Kind::kRecv, peer, data, bytes, tag);
}

void Communicator::Send(int peer, const void* data, size_t bytes, uint32_t tag) {
  ISend(peer, data, bytes, tag)->Wait();
}

void Communicator::Recv(int peer, void* data, size_t bytes, uint32_t tag) {
  IRecv(peer, data, bytes, tag)->Wait();
}

}  // namespace longctx::comm
