#include "ring/ring_attention.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cpu/attention.h"

namespace longctx::ring {

namespace {

using Clock = std::chrono::steady_clock;

// Adds the wall time of a scope to a counter.
class ScopedSeconds {
 public:
  explicit ScopedSeconds(double& total) : total_(total), start_(Clock::now()) {}
  ~ScopedSeconds() { total_ += std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  double& total_;
  Clock::time_point start_;
};

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Compute time, both as wall time and as this thread's CPU time: with more ranks than cores the
// two differ, and the benchmark's balance and overhead are about the work, not the scheduling.
class ScopedCompute {
 public:
  explicit ScopedCompute(RingStats& stats)
      : wall_(stats.compute_seconds), stats_(stats), cpu_(ThreadCpuSeconds()) {}
  ~ScopedCompute() { stats_.compute_cpu_seconds += ThreadCpuSeconds() - cpu_; }

 private:
  ScopedSeconds wall_;
  RingStats& stats_;
  double cpu_;
};

// A wait shorter than this found its transfer already complete (the call itself costs a few
// microseconds): the exchange was hidden behind the computation.
constexpr double kReadyWaitSeconds = 100e-6;

// Tags keep the K/V stream and the dK/dV stream apart: both carry blocks of the same size.
constexpr uint32_t kTagKV = 1;
constexpr uint32_t kTagGradKV = 2;

}  // namespace

RingAttention::RingAttention(comm::Communicator* comm, std::shared_ptr<Arena> arena, Sharding sharding)
    : comm_(comm), arena_(std::move(arena)), sharding_(sharding) {
  if (comm_ != nullptr) {
    rank_ = comm_->rank();
    world_ = comm_->size();
  }
}

void RingAttention::WaitReceive(comm::PendingTransfer& transfer, size_t bytes) {
  const auto start = Clock::now();
  transfer.Wait();
  stats_.bytes_received += bytes;
  if (std::chrono::duration<double>(Clock::now() - start).count() < kReadyWaitSeconds) {
    stats_.bytes_received_ready += bytes;
  }
}

RingAttention::Block RingAttention::BlockAt(int step, int local_len) const {
  const int c = local_len / 2;
  if (step == 0) return {true, 0, local_len, 0, local_len};
  const int source = (rank_ - step + world_) % world_;
  if (sharding_ == Sharding::kContiguous) {
    if (source < rank_) return {true, 0, local_len, 0, local_len};
    return {false, 0, 0, 0, 0};
  }
  if (source < rank_) return {true, 0, local_len, 0, c};  // all queries, j's first chunk
  return {true, c, c, 0, local_len};                      // second query chunk, all of j
}

namespace {

// Validates the shape (the kernels check heads against kv_heads) and returns the local length.
int LocalLen(const model::AttentionShape& shape) {
  if (shape.tokens <= 0 || shape.tokens % 2 != 0) {
    throw std::invalid_argument(
        "ring attention: a rank holds two equal chunks, so its token count must be "
        "positive and even, got " +
        std::to_string(shape.tokens));
  }
  return shape.tokens;
}

}  // namespace

void RingAttention::Forward(const model::AttentionShape& shape, const float* q, const float* k,
                            const float* v, float* o, float* lse) {
  const int local_len = LocalLen(shape);
  const int H = shape.heads, KVH = shape.kv_heads, D = shape.head_dim;
  const size_t kv_floats = static_cast<size_t>(local_len) * KVH * D;  // one of K or V
  cpu::AttentionDims local{local_len, local_len, H, KVH, D, shape.scale};

  Tensor workspace =
      Tensor::Empty(arena_, {static_cast<int64_t>(cpu::FlashAttentionForwardWorkspace(local))});
  if (world_ == 1) {
    ScopedCompute t(stats_);
    cpu::FlashAttentionForward(local, cpu::AttentionMask::kCausal, q, k, v, o, lse, workspace.data());
    return;
  }

  // Two K/V blocks: the one being computed on and the one arriving from rank-1.
  Tensor held = Tensor::Empty(arena_, {static_cast<int64_t>(2 * kv_floats)});
  Tensor arriving = Tensor::Empty(arena_, {static_cast<int64_t>(2 * kv_floats)});
  Tensor part_o = Tensor::Empty(arena_, {static_cast<int64_t>(local_len) * H * D});
  Tensor part_lse = Tensor::Empty(arena_, {static_cast<int64_t>(local_len) * H});
  std::memcpy(held.data(), k, kv_floats * sizeof(float));
  std::memcpy(held.data() + kv_floats, v, kv_floats * sizeof(float));
  const int next = (rank_ + 1) % world_, prev = (rank_ - 1 + world_) % world_;
  const size_t block_bytes = 2 * kv_floats * sizeof(float);

  std::unique_ptr<comm::PendingTransfer> sending, receiving;
  auto post = [&] {
    sending = comm_->ISend(next, held.data(), block_bytes, kTagKV);
    receiving = comm_->IRecv(prev, arriving.data(), block_bytes, kTagKV);
  };
  auto collect = [&] {
    ScopedSeconds t(stats_.wait_seconds);
    WaitReceive(*receiving, block_bytes);
    sending->Wait();
    stats_.bytes_sent += block_bytes;
  };

  post();
  {
    ScopedCompute t(stats_);
    cpu::FlashAttentionForward(local, cpu::AttentionMask::kCausal, q, k, v, o, lse, workspace.data());
  }
  for (int step = 1; step < world_; ++step) {
    collect();
    std::swap(held, arriving);
    if (step + 1 < world_) post();
    const Block b = BlockAt(step, local_len);
    if (!b.active) continue;
    ScopedCompute t(stats_);
    const float* hk = held.data() + static_cast<size_t>(b.kv_begin) * KVH * D;
    const float* hv = held.data() + kv_floats + static_cast<size_t>(b.kv_begin) * KVH * D;
    cpu::AttentionDims dims{b.q_len, b.kv_len, H, KVH, D, shape.scale};
    const size_t q_off = static_cast<size_t>(b.q_begin) * H * D;
    cpu::FlashAttentionForward(dims, cpu::AttentionMask::kNone, q + q_off, hk, hv, part_o.data(),
                               part_lse.data(), workspace.data());
    cpu::MergeAttentionPartial(b.q_len * H, D, o + q_off, lse + static_cast<size_t>(b.q_begin) * H,
                               part_o.data(), part_lse.data());
  }
}

void RingAttention::Backward(const model::AttentionShape& shape, const float* q, const float* k,
                             const float* v, const float* o, const float* lse, const float* dout, float* dq,
                             float* dk, float* dv) {
  const int local_len = LocalLen(shape);
  const int H = shape.heads, KVH = shape.kv_heads, D = shape.head_dim;
  const size_t kv_floats = static_cast<size_t>(local_len) * KVH * D;
  cpu::AttentionDims local{local_len, local_len, H, KVH, D, shape.scale};
  Tensor workspace =
      Tensor::Empty(arena_, {static_cast<int64_t>(cpu::FlashAttentionBackwardWorkspace(local))});

  if (world_ == 1) {
    ScopedCompute t(stats_);
    cpu::FlashAttentionBackward(local, cpu::AttentionMask::kCausal, q, k, v, o, lse, dout, dq, dk, dv,
                                workspace.data());
    return;
  }

  const int next = (rank_ + 1) % world_, prev = (rank_ - 1 + world_) % world_;
  const size_t block_bytes = 2 * kv_floats * sizeof(float);
  // K/V travel exactly as in forward.
  Tensor held = Tensor::Empty(arena_, {static_cast<int64_t>(2 * kv_floats)});
  Tensor arriving = Tensor::Empty(arena_, {static_cast<int64_t>(2 * kv_floats)});
  // dK/dV accumulators: the one being sent on, the one arriving, and this step's contribution
  // (computed into zeros so it overlaps with the accumulator's arrival, then added).
  Tensor grad_out = Tensor::Zeros(arena_, {static_cast<int64_t>(2 * kv_floats)});
  Tensor grad_in = Tensor::Empty(arena_, {static_cast<int64_t>(2 * kv_floats)});
  Tensor grad_part = Tensor::Empty(arena_, {static_cast<int64_t>(2 * kv_floats)});
  std::memcpy(held.data(), k, kv_floats * sizeof(float));
  std::memcpy(held.data() + kv_floats, v, kv_floats * sizeof(float));

  std::unique_ptr<comm::PendingTransfer> kv_send, kv_recv, grad_send, grad_recv;
  auto wait = [&](std::unique_ptr<comm::PendingTransfer>& t, bool counts_as_sent) {
    if (!t) return;
    ScopedSeconds s(stats_.wait_seconds);
    if (counts_as_sent) {
      t->Wait();
      stats_.bytes_sent += block_bytes;
    } else {
      WaitReceive(*t, block_bytes);
    }
    t.reset();
  };
  auto post_kv = [&] {
    kv_send = comm_->ISend(next, held.data(), block_bytes, kTagKV);
    kv_recv = comm_->IRecv(prev, arriving.data(), block_bytes, kTagKV);
  };

  // Step 0: the local causal block; its gradient starts the journey of this rank's own block.
  post_kv();
  {
    ScopedCompute t(stats_);
    cpu::FlashAttentionBackward(local, cpu::AttentionMask::kCausal, q, k, v, o, lse, dout, dq,
                                grad_out.data(), grad_out.data() + kv_floats, workspace.data());
  }
  grad_send = comm_->ISend(next, grad_out.data(), block_bytes, kTagGradKV);

  for (int step = 1; step < world_; ++step) {
    wait(kv_recv, false);
    wait(kv_send, true);
    std::swap(held, arriving);
    if (step + 1 < world_) post_kv();
    // The accumulator of the block now held is on its way from rank-1 (it computed on it last step).
    grad_recv = comm_->IRecv(prev, grad_in.data(), block_bytes, kTagGradKV);

    const Block b = BlockAt(step, local_len);
    if (b.active) {
      ScopedCompute t(stats_);
      std::fill(grad_part.data(), grad_part.data() + 2 * kv_floats, 0.0f);
      const size_t kv_off = static_cast<size_t>(b.kv_begin) * KVH * D;
      const size_t q_off = static_cast<size_t>(b.q_begin) * H * D;
      const size_t lse_off = static_cast<size_t>(b.q_begin) * H;
      cpu::AttentionDims dims{b.q_len, b.kv_len, H, KVH, D, shape.scale};
      cpu::FlashAttentionBackward(dims, cpu::AttentionMask::kNone, q + q_off, held.data() + kv_off,
                                  held.data() + kv_floats + kv_off, o + q_off, lse + lse_off, dout + q_off,
                                  dq + q_off, grad_part.data() + kv_off,
                                  grad_part.data() + kv_floats + kv_off, workspace.data());
    }
    wait(grad_recv, false);
    if (b.active) {
      ScopedCompute t(stats_);
      float* acc = grad_in.data();
      const float* add = grad_part.data();
      for (size_t i = 0; i < 2 * kv_floats; ++i) acc[i] += add[i];
    }
    wait(grad_send, true);
    std::swap(grad_in, grad_out);
    grad_send = comm_->ISend(next, grad_out.data(), block_bytes, kTagGradKV);
  }
  // The last hop brings this rank's own accumulator home, complete.
  grad_recv = comm_->IRecv(prev, grad_in.data(), block_bytes, kTagGradKV);
  wait(grad_recv, false);
  wait(grad_send, true);
  const float* home = grad_in.data();
  for (size_t i = 0; i < kv_floats; ++i) dk[i] += home[i];
  for (size_t i = 0; i < kv_floats; ++i) dv[i] += home[kv_floats + i];
}

}  // namespace longctx::ring
