// Ring attention: causal self-attention over a sequence spread across the ranks of a
// communicator (context parallelism), exact up to float32 rounding against attention over the
// whole sequence.
//
// Sharding (ARCHITECTURE.md): the sequence is cut into 2N chunks. In zigzag mode rank r holds
// chunks r and 2N-1-r, so every ring step costs every rank the same; contiguous mode (rank r
// holds chunks 2r and 2r+1) exists only so the benchmark can show the imbalance zigzag removes.
// Each rank passes its K/V block to rank r+1 and receives rank r-1's, so at step s it holds the
// block of rank j = (r-s) mod N:
//   s = 0: its own block, causal mask.
//   zigzag, j < r: both local query chunks against j's first chunk (j's second is in the future).
//   zigzag, j > r: only the second query chunk, against both of j's chunks.
//   contiguous, j < r: all queries against all of j's keys; j > r: nothing (the future).
// Partial results merge through the log-sum-exp in float32. Backward: dQ accumulates locally,
// the dK/dV of each block travel the ring with it and arrive at their owner after N hops. Only KV
// heads travel. Every transfer of the next block is posted before the current block is computed.
#pragma once

#include <cstdint>
#include <memory>

#include "comm/communicator.h"
#include "model/sequence_attention.h"
#include "tensor/arena.h"
#include "tensor/tensor.h"

namespace longctx::ring {

enum class Sharding { kZigzag, kContiguous };

// What one rank spent, summed over every Forward/Backward since the last Reset.
struct RingStats {
  double compute_seconds = 0;      // wall time inside attention kernels and merges
  double compute_cpu_seconds = 0;  // this thread's CPU time there (unaffected by other processes)
  double wait_seconds = 0;         // blocked waiting for a transfer to complete
  uint64_t bytes_sent = 0;         // payload bytes this rank sent
  // Received blocks, and those that had fully arrived when the rank came to use them: their
  // ratio is how much of the exchange the computation hid.
  uint64_t bytes_received = 0;
  uint64_t bytes_received_ready = 0;
  void Reset() { *this = RingStats{}; }
};

// The model's attention when the sequence is spread over the ranks of `comm`.
class RingAttention final : public model::SequenceAttention {
 public:
  // `comm` may be null for a single rank (then this is plain causal flash attention). Scratch
  // buffers come from `arena`, so the device's memory accounting sees them.
  RingAttention(comm::Communicator* comm, std::shared_ptr<Arena> arena,
                Sharding sharding = Sharding::kZigzag);

  // Tensors hold this rank's shape.tokens tokens in local order (its two chunks one after the
  // other), laid out as in kernels/cpu/attention.h. shape.tokens must be even.
  void Forward(const model::AttentionShape& shape, const float* q, const float* k, const float* v, float* o,
               float* lse) override;
  // o and lse are Forward's outputs. Adds into dq, dk, dv (the caller zeroes them).
  void Backward(const model::AttentionShape& shape, const float* q, const float* k, const float* v,
                const float* o, const float* lse, const float* dout, float* dq, float* dk,
                float* dv) override;

  const RingStats& stats() const { return stats_; }
  void ResetStats() { stats_.Reset(); }
  int rank() const { return rank_; }
  int world() const { return world_; }

 private:
  // Which query rows attend to which key rows of the block held at ring step `step`.
  struct Block {
    bool active;
    int q_begin, q_len;    // local query rows
    int kv_begin, kv_len;  // rows of the held K/V block
  };
  Block BlockAt(int step, int local_len) const;
  // Waits for a receive and records whether it had already arrived.
  void WaitReceive(comm::PendingTransfer& transfer, size_t bytes);

  comm::Communicator* comm_;
  std::shared_ptr<Arena> arena_;
  Sharding sharding_;
  int rank_ = 0;
  int world_ = 1;
  RingStats stats_;
};

}  // namespace longctx::ring
