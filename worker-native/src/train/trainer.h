// The trainer: what one rank runs each training step, on its shard of the sequence.
//
//   accumulate(micro-batch) × A, then step(lr)
//
// Context parallelism: with world > 1 the model's attention is zigzag RingAttention over the
// communicator; each rank passes its zigzag shard of the sequence (ids, explicit global positions,
// labels). The loss is the mean over ALL counted tokens of the micro-batch's sequence: the ranks
// first all-reduce their label counts (one small collective), so every rank uses
// grad_scale = 1 / (global count × A). The parameter gradients are summed across ranks at the step.
//
// The step (ZeRO-1, sharded_adamw.h): all-reduce the gradients (gloo sums each element once and
// broadcasts it, so all ranks hold bitwise the same sums); the global norm is SumOfSquares over the
// full reduced gradients — the same on every rank with no further communication; clip; AdamW on the
// owned shard; then all-gather the parameters as an all-reduce of a buffer that holds -0.0 outside
// each rank's shard (x + -0.0 == x for every float, +0 and -0 included, so the gather is exact).
//
// Activation checkpointing (checkpointing.h) and offload (parameter_store.h) are per trainer; the
// losses, gradients and weights are bitwise identical under every policy and every offload mode.
//
// Memory: everything the rank keeps on its device comes from the device Arena (budget, current,
// peak), host-side state from the host Arena; both are reported with every micro-step and step.
//
// Backends (backend.h): the same trainer runs on an emulated CPU device (float32, the default) or
// on a CUDA device (options.cuda_device >= 0: bf16 compute weights and activations, float32 master
// weights, gradients and moments). The checkpoint state is the float32 masters on both, so a
// checkpoint moves between them. params(), grads(), exp_avg() and exp_avg_sq() point at the
// backend's memory (device memory on a GPU): read them with CopyToHost.
//
// Failures: a bad argument throws before anything changes. An out-of-memory or communication failure
// during a micro-step may leave part of that micro-step's gradients added, and a failed step may leave
// the parameters partly updated (a communication failure also leaves the communicator unusable):
// resume from a checkpoint in a new process group.
//
// Not thread-safe: one call at a time (the binding refuses a second with "busy"). Every rank must call
// accumulate / evaluate / reduceGradients / step in the same order with the same options, and nothing
// else may use the communicator meanwhile (collective order; the ring's transfers use tags 1 and 2).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/input_embeddings.h"
#include "model/qwen2_config.h"
#include "ring/ring_attention.h"
#include "tensor/arena.h"
#include "tensor/tensor.h"
#include "train/backend.h"
#include "train/checkpointing.h"
#include "train/model_pass.h"
#include "train/parameter_store.h"
#include "train/sharded_adamw.h"

namespace longctx::train {

struct TrainerOptions {
  model::Qwen2Config config;
  uint64_t seed = 0;  // InitQwen2Parameters(seed): the same on every rank
  double initializer_range = 0.02;
  size_t device_budget_bytes = 0;
  size_t host_budget_bytes = 0;
  std::string device_label = "device cpu:0";  // names the device in out-of-memory errors
  int cuda_device = -1;                       // >= 0: train on this CUDA device (backend.h)
  // How CUDA ranks exchange device memory: "auto" (NCCL when found), "nccl" or "staged"
  // (kernels/cuda/device_collectives.h).
  std::string collectives = "auto";
  CheckpointPolicy checkpointing;
  Offload offload = Offload::kNone;
  OptimizerOptions optimizer;
  int ce_chunk_tokens = 256;
};

struct MemoryStats {
  size_t device_current, device_peak, device_budget;
  size_t host_current, host_peak, host_budget;
};

struct MicroStepStats {
  double loss_sum;         // this rank's Σ cross-entropy over its counted tokens
  int64_t tokens;          // this rank's counted tokens
  double global_loss_sum;  // over all ranks: the micro-batch's loss is global_loss_sum / global_tokens
  int64_t global_tokens;
  double compute_seconds;    // wall time of the micro-step not spent waiting for communication
  double comm_wait_seconds;  // blocked on the ring's transfers and on the collectives
  uint64_t bytes_sent;       // point-to-point payload bytes sent (the ring's K/V and dK/dV blocks)
  MemoryStats memory;        // peaks since the last ResetPeak
};

struct EvalStats {
  double loss_sum;
  int64_t tokens;
  double global_loss_sum;
  int64_t global_tokens;
  int64_t argmax_correct;         // this rank's counted tokens whose label is the logits' strict argmax
  int64_t global_argmax_correct;  // over all ranks
};

struct StepStats {
  double grad_norm;          // global L2 norm of the summed gradients, before clipping
  double clip_coefficient;   // what the gradients were scaled by (1 when not clipped)
  double optimizer_seconds;  // wall time of the step not spent waiting for communication
  double comm_wait_seconds;  // the gradient all-reduce (unless done by ReduceGradients) and the gather
  int64_t adam_step;         // AdamW steps taken, this one included
  MemoryStats memory;
};

class Trainer {
 public:
  // `comm` is null (or of size 1) for a single rank. Allocates parameters, gradients and the
  // optimizer state (OutOfMemoryError naming the arena when they do not fit) and initialises the
  // parameters from options.seed.
  Trainer(std::shared_ptr<comm::Communicator> comm, TrainerOptions options);
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One micro-batch: this rank's `tokens` tokens (every rank passes the same count). Adds the
  // gradients of the micro-batch's mean loss / accumulation_steps.
  MicroStepStats Accumulate(const int32_t* ids, const int32_t* positions, const int32_t* labels, int tokens,
                            int accumulation_steps);
  // The loss only (no gradients, one layer's activations at a time); collective like Accumulate.
  // `embeddings` replace the token embeddings of their spans of this rank's tokens
  // (model/input_embeddings.h); ranks may pass different spans (their own chunks' rows).
  EvalStats Evaluate(const int32_t* ids, const int32_t* positions, const int32_t* labels, int tokens,
                     const std::vector<model::EmbeddingSpan>& embeddings = {});
  // Sums the gradients across ranks now (Step does it otherwise); afterwards gradients() holds the
  // global sums and Accumulate is refused until Step. Returns the seconds waited.
  double ReduceGradients();
  // The optimizer step at learning rate lr; the gradients are zero afterwards.
  StepStats Step(double lr);

  // The checkpoint state: full parameters, this rank's moments and the AdamW step count.
  const float* params() const { return store_.params(); }
  const float* grads() const { return store_.grads(); }
  const float* exp_avg() const { return adam_.exp_avg(); }
  const float* exp_avg_sq() const { return adam_.exp_avg_sq(); }
  int64_t adam_step() const { return adam_.step(); }
  // Each pointer may be null (not loaded); lengths are checked by the caller against
  // num_parameters() and shard().size().
  void Load(const float* params, const float* exp_avg, const float* exp_avg_sq, const int64_t* adam_step);

  // dst[0, n) = src[0, n) where src is one of the pointers above (device memory on a GPU).
  void CopyToHost(float* dst, const float* src, int64_t n) const;
  const Backend& backend() const { return *backend_; }

  MemoryStats memory() const;
  void ResetPeak();

  const model::Qwen2Config& config() const { return options_.config; }
  const model::Qwen2Layout& layout() const { return layout_; }
  const TrainerOptions& options() const { return options_; }
  int64_t num_parameters() const { return layout_.NumParameters(); }
  int rank() const { return rank_; }
  int world() const { return world_; }
  ShardRange shard() const { return adam_.shard(); }
  bool gradients_reduced() const { return gradients_reduced_; }

 private:
  void CheckTokens(const int32_t* ids, const int32_t* positions, const int32_t* labels, int tokens) const;
  // In-place sum across ranks (no-op on one rank); adds the time blocked to *waited.
  void AllReduce(double* data, size_t count, double* waited);
  // on_device: data is the backend's device memory (staged through the host on a GPU).
  void AllReduce(float* data, size_t count, double* waited, bool on_device);
  // The optimizer update of the owned shard, wherever the offload mode keeps it.
  void UpdateShard(double lr, float clip);
  // Every rank gets every rank's updated shard.
  void GatherParameters(double* waited);

  TrainerOptions options_;
  model::Qwen2Layout layout_;
  std::shared_ptr<comm::Communicator> comm_;
  int rank_ = 0;
  int world_ = 1;
  std::unique_ptr<Backend> backend_;
  std::shared_ptr<Arena> device_;
  std::shared_ptr<Arena> host_;
  ring::RingAttention attention_;
  std::unique_ptr<model::ModelKernels> kernels_;
  ParameterStore store_;
  ShardedAdamW adam_;
  ModelPass pass_;
  // Under optimizer offload: the host copies of the owned shard the step works on.
  Tensor host_params_shard_;
  Tensor host_grads_shard_;
  bool gradients_reduced_ = false;
};

}  // namespace longctx::train
