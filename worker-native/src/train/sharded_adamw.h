// AdamW with ZeRO-1 sharding: every rank keeps the full parameters and the full gradients, but the
// AdamW moments only of the range of the flat parameter buffer it owns, and updates only that range;
// the trainer then gathers the updated ranges so every rank holds all parameters again.
//
// Ownership is checkpoints/optimizer-shards.ts shardRange: rank r of N owns
// [floor(r·P/N), floor((r+1)·P/N)), so a saved optimizer shard is exactly this object's moments.
//
// The update is elementwise (kernels/cpu/adamw.h, torch.optim.AdamW arithmetic), so for the same
// gradients the parameters after a step are bitwise the same whatever the world size and wherever
// the shard boundaries fall. Weight decay applies per Hugging Face view (ParamView::weight_decay:
// matrices and embeddings, not biases or norm weights).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/qwen2_config.h"
#include "tensor/arena.h"
#include "tensor/tensor.h"
#include "train/backend.h"

namespace longctx::train {

struct ShardRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// The range rank `rank` of `world` owns of `total` elements.
ShardRange OwnedShard(int64_t total, int world, int rank);

struct OptimizerOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  // Largest global gradient norm; larger gradients are scaled down to it. 0 disables clipping.
  double grad_clip = 0.0;
  // Throws std::invalid_argument naming the field ("optimizer.beta1 must be in [0, 1), got 1").
  void Validate() const;
};

class ShardedAdamW {
 public:
  // The moments (zero) come from `arena`: the device's, or the host's under optimizer offload. With
  // `device` the update runs there (the moments are device memory); without it, with the CPU kernel
  // on host memory. Keeps a pointer to `device`.
  ShardedAdamW(const model::Qwen2Layout& layout, ShardRange shard, OptimizerOptions options,
               std::shared_ptr<Arena> arena, Backend* device = nullptr);

  // One AdamW step of the owned shard at learning rate lr: params and grads point at the shard's
  // first element (wherever the caller keeps them). Counts the step first (steps count from 1).
  // Throws std::invalid_argument for a bad lr before touching anything.
  void Update(float* params, const float* grads, double lr);
  // Throws like Update would, without updating.
  void CheckLearningRate(double lr) const;

  ShardRange shard() const { return shard_; }
  const OptimizerOptions& options() const { return options_; }
  int64_t step() const { return step_; }
  void set_step(int64_t step);
  float* exp_avg() { return exp_avg_.data(); }
  float* exp_avg_sq() { return exp_avg_sq_.data(); }
  const float* exp_avg() const { return exp_avg_.data(); }
  const float* exp_avg_sq() const { return exp_avg_sq_.data(); }

 private:
  // A stretch of the shard with one weight-decay setting, relative to shard_.begin.
  struct Piece {
    int64_t begin, end;
    bool decay;
  };
  ShardRange shard_;
  OptimizerOptions options_;
  Backend* device_;
  std::vector<Piece> pieces_;
  Tensor exp_avg_;
  Tensor exp_avg_sq_;
  int64_t step_ = 0;
};

}  // namespace longctx::train
