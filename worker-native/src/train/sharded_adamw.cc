#include "train/sharded_adamw.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "kernels/cpu/adamw.h"

namespace longctx::train {

ShardRange OwnedShard(int64_t total, int world, int rank) {
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("rank " + std::to_string(rank) + " of world " + std::to_string(world) +
                                " owns no shard");
  // In 128 bits: total·rank overflows 64 bits only past 2^63 / world parameters, but be exact anyway.
  const auto at = [&](int r) { return static_cast<int64_t>(static_cast<__int128>(total) * r / world); };
  return {at(rank), at(rank + 1)};
}

void OptimizerOptions::Validate() const {
  auto bad = [](const char* name, double value, const char* want) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.9g", value);
    throw std::invalid_argument(std::string("optimizer.") + name + " must be " + want + ", got " + text);
  };
  if (!(beta1 >= 0.0 && beta1 < 1.0)) bad("beta1", beta1, "in [0, 1)");
  if (!(beta2 >= 0.0 && beta2 < 1.0)) bad("beta2", beta2, "in [0, 1)");
  if (!(eps > 0.0) || !std::isfinite(eps)) bad("eps", eps, "a positive finite number");
  if (!(weight_decay >= 0.0) || !std::isfinite(weight_decay))
    bad("weightDecay", weight_decay, "a finite number >= 0");
  if (!(grad_clip >= 0.0) || !std::isfinite(grad_clip))
    bad("gradClip", grad_clip, "a finite number >= 0 (0 disables clipping)");
}

ShardedAdamW::ShardedAdamW(const model::Qwen2Layout& layout, ShardRange shard, OptimizerOptions options,
                           std::shared_ptr<Arena> arena, Backend* device)
    : shard_(shard), options_(options), device_(device) {
  options_.Validate();
  for (const model::ParamView& v : layout.views()) {
    const int64_t b = std::max(v.offset, shard_.begin), e = std::min(v.offset + v.numel, shard_.end);
    if (b >= e) continue;
    // Neighbours with the same setting merge: the update is elementwise, so this only saves calls.
    if (!pieces_.empty() && pieces_.back().decay == v.weight_decay && pieces_.back().end == b - shard_.begin)
      pieces_.back().end = e - shard_.begin;
    else
      pieces_.push_back({b - shard_.begin, e - shard_.begin, v.weight_decay});
  }
  exp_avg_ = Tensor::Zeros(arena, {shard_.size()});
  exp_avg_sq_ = Tensor::Zeros(arena, {shard_.size()});
}

void ShardedAdamW::CheckLearningRate(double lr) const {
  cpu::CheckAdamW({lr, options_.beta1, options_.beta2, options_.eps, options_.weight_decay}, step_ + 1);
}

void ShardedAdamW::Update(float* params, const float* grads, double lr) {
  CheckLearningRate(lr);
  ++step_;
  for (const Piece& p : pieces_) {
    const double decay = p.decay ? options_.weight_decay : 0.0;
    if (device_ != nullptr) {
      device_->AdamW({lr, options_.beta1, options_.beta2, options_.eps, decay, step_}, params + p.begin,
                     grads + p.begin, exp_avg_.data() + p.begin, exp_avg_sq_.data() + p.begin,
                     p.end - p.begin);
      continue;
    }
    const cpu::AdamWHyper hyper{lr, options_.beta1, options_.beta2, options_.eps, decay};
    cpu::AdamWUpdate(hyper, step_, params + p.begin, grads + p.begin, exp_avg_.data() + p.begin,
                     exp_avg_sq_.data() + p.begin, p.end - p.begin);
  }
}

void ShardedAdamW::set_step(int64_t step) {
  if (step < 0) throw std::invalid_argument("adamStep must be an integer >= 0, got " + std::to_string(step));
  step_ = step;
}

}  // namespace longctx::train
