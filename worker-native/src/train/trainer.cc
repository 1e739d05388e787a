#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/qwen2_model.h"

namespace longctx::train {

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int WorldOf(const std::shared_ptr<comm::Communicator>& comm) { return comm ? comm->size() : 1; }

std::unique_ptr<Backend> MakeBackend(const TrainerOptions& o) {
  if (o.cuda_device < 0) return MakeCpuBackend(o.device_label, o.device_budget_bytes, o.host_budget_bytes);
  return MakeCudaBackend(o.cuda_device, o.device_label, o.device_budget_bytes, o.host_budget_bytes,
                         o.collectives);
}

}  // namespace

Trainer::Trainer(std::shared_ptr<comm::Communicator> comm, TrainerOptions options)
    : options_(std::move(options)),
      layout_(options_.config),
      comm_(std::move(comm)),
      rank_(comm_ ? comm_->rank() : 0),
      world_(WorldOf(comm_)),
      backend_(MakeBackend(options_)),
      device_(backend_->device()),
      host_(backend_->host()),
      attention_(world_ > 1 ? comm_.get() : nullptr, device_, ring::Sharding::kZigzag),
      kernels_(backend_->MakeKernels(attention_, world_ > 1 ? comm_.get() : nullptr)),
      store_(layout_.NumParameters(), options_.offload, *backend_),
      adam_(layout_, OwnedShard(layout_.NumParameters(), world_, rank_), options_.optimizer,
            options_.offload == Offload::kNone ? device_ : host_,
            options_.offload == Offload::kNone ? backend_.get() : nullptr),
      pass_(options_.config, layout_, device_, *kernels_, store_, options_.checkpointing,
            options_.ce_chunk_tokens) {
  if (options_.offload == Offload::kOptimizer) {
    host_params_shard_ = Tensor::Empty(host_, {adam_.shard().size()});
    host_grads_shard_ = Tensor::Empty(host_, {adam_.shard().size()});
  }
  // The init is a host computation; a copy puts it wherever the parameters live.
  std::vector<float> init(static_cast<size_t>(store_.size()));
  model::InitQwen2Parameters(layout_, init.data(), options_.seed, options_.initializer_range);
  backend_->Copy(store_.params(), init.data(), init.size() * sizeof(float));
  store_.RefreshCompute();
}

void Trainer::AllReduce(double* data, size_t count, double* waited) {
  if (world_ == 1) return;
  const auto start = Clock::now();
  comm_->AllReduceSum(data, count);
  *waited += SecondsSince(start);
}

void Trainer::AllReduce(float* data, size_t count, double* waited, bool on_device) {
  if (world_ == 1) return;
  const auto start = Clock::now();
  if (on_device)
    backend_->AllReduceSum(*comm_, data, count);
  else
    comm_->AllReduceSum(data, count);
  *waited += SecondsSince(start);
}

void Trainer::CheckTokens(const int32_t* ids, const int32_t* positions, const int32_t* labels,
                          int tokens) const {
  model::CheckQwen2Inputs(options_.config, ids, positions, labels, tokens);
  if (world_ > 1 && tokens % 2 != 0)
    throw std::invalid_argument(
        "a rank's zigzag shard is two equal chunks, so its token count must be even, got " +
        std::to_string(tokens));
}

MicroStepStats Trainer::Accumulate(const int32_t* ids, const int32_t* positions, const int32_t* labels,
                                   int tokens, int accumulation_steps) {
  if (accumulation_steps < 1)
    throw std::invalid_argument("accumulationSteps must be an integer >= 1, got " +
                                std::to_string(accumulation_steps));
  if (gradients_reduced_)
    throw std::logic_error(
        "accumulate: this step's gradients were already summed across ranks (reduceGradients); call step() "
        "first");
  CheckTokens(ids, positions, labels, tokens);
  backend_->Activate();
  const auto start = Clock::now();
  attention_.ResetStats();
  double waited = 0;

  // The global label count sets the gradient scale. Σ tokens and Σ tokens² travel along: all ranks
  // passed the same count exactly when N·Σt² = (Σt)², checked before the ring could hang on it.
  const int64_t count = cpu::CountLabels(labels, tokens);
  double totals[3] = {static_cast<double>(count), static_cast<double>(tokens),
                      static_cast<double>(tokens) * tokens};
  AllReduce(totals, 3, &waited);
  if (totals[2] * world_ != totals[1] * totals[1])
    throw std::invalid_argument("the ranks passed different token counts (this rank " +
                                std::to_string(tokens) + ", " +
                                std::to_string(static_cast<int64_t>(totals[1])) + " in all over " +
                                std::to_string(world_) + " ranks); each passes seq_len / world");
  const int64_t global_count = static_cast<int64_t>(totals[0]);
  const double grad_scale =
      global_count > 0 ? 1.0 / (static_cast<double>(global_count) * accumulation_steps) : 0.0;

  const model::StepLoss loss = pass_.ForwardBackward(ids, positions, labels, tokens, grad_scale);
  double global_loss = loss.loss_sum;
  AllReduce(&global_loss, 1, &waited);

  const ring::RingStats& ring = attention_.stats();
  waited += ring.wait_seconds;
  MicroStepStats s{};
  s.loss_sum = loss.loss_sum;
  s.tokens = loss.tokens;
  s.global_loss_sum = global_loss;
  s.global_tokens = global_count;
  s.comm_wait_seconds = waited;
  s.compute_seconds = SecondsSince(start) - waited;
  s.bytes_sent = ring.bytes_sent;
  s.memory = memory();
  return s;
}

EvalStats Trainer::Evaluate(const int32_t* ids, const int32_t* positions, const int32_t* labels, int tokens,
                            const std::vector<model::EmbeddingSpan>& embeddings) {
  CheckTokens(ids, positions, labels, tokens);
  model::CheckEmbeddingSpans(embeddings, tokens, options_.config.hidden_size);
  backend_->Activate();
  double waited = 0;
  const model::StepLoss loss = pass_.Forward(ids, positions, labels, tokens, embeddings);
  // Counts travel as doubles: exact up to 2^53.
  double totals[3] = {loss.loss_sum, static_cast<double>(loss.tokens),
                      static_cast<double>(loss.argmax_correct)};
  AllReduce(totals, 3, &waited);
  EvalStats s{};
  s.loss_sum = loss.loss_sum;
  s.tokens = loss.tokens;
  s.argmax_correct = loss.argmax_correct;
  s.global_loss_sum = totals[0];
  s.global_tokens = static_cast<int64_t>(totals[1]);
  // -1 on every rank where the backend does not count argmax hits (the same backend everywhere).
  s.global_argmax_correct = loss.argmax_correct < 0 ? -1 : static_cast<int64_t>(totals[2]);
  return s;
}

double Trainer::ReduceGradients() {
  double waited = 0;
  backend_->Activate();
  if (!gradients_reduced_)
    AllReduce(store_.grads(), static_cast<size_t>(store_.size()), &waited, !store_.on_host());
  gradients_reduced_ = true;
  return waited;
}

void Trainer::UpdateShard(double lr, float clip) {
  const ShardRange shard = adam_.shard();
  const size_t bytes = static_cast<size_t>(shard.size()) * sizeof(float);
  float* params = store_.params() + shard.begin;
  float* grads = store_.grads() + shard.begin;
  if (options_.offload == Offload::kOptimizer) {
    // device → host, step on the host, parameters host → device.
    backend_->Copy(host_grads_shard_.data(), grads, bytes);
    backend_->Copy(host_params_shard_.data(), params, bytes);
    params = host_params_shard_.data();
    grads = host_grads_shard_.data();
  }
  if (clip < 1.0f) {
    if (options_.offload == Offload::kNone)
      backend_->ScaleInPlace(grads, shard.size(), clip);
    else
      cpu::ScaleInPlace(grads, shard.size(), clip);
  }
  adam_.Update(params, grads, lr);
  if (options_.offload == Offload::kOptimizer)
    backend_->Copy(store_.params() + shard.begin, host_params_shard_.data(), bytes);
}

void Trainer::GatherParameters(double* waited) {
  if (world_ == 1) return;
  const ShardRange shard = adam_.shard();
  float* params = store_.params();
  const int64_t total = store_.size();
  if (store_.masters_on_host()) {
    for (int64_t i = 0; i < shard.begin; ++i) params[i] = -0.0f;
    for (int64_t i = shard.end; i < total; ++i) params[i] = -0.0f;
  } else {
    backend_->Fill(params, shard.begin, -0.0f);
    backend_->Fill(params + shard.end, total - shard.end, -0.0f);
  }
  AllReduce(params, static_cast<size_t>(total), waited, !store_.masters_on_host());
}

StepStats Trainer::Step(double lr) {
  adam_.CheckLearningRate(lr);
  backend_->Activate();
  const auto start = Clock::now();
  double waited = ReduceGradients();
  const double squares = store_.on_host() ? cpu::SumOfSquares(store_.grads(), store_.size())
                                          : backend_->SumOfSquares(store_.grads(), store_.size());
  const double norm = std::sqrt(squares);
  const double clip = cpu::ClipCoefficient(norm, options_.optimizer.grad_clip);
  UpdateShard(lr, static_cast<float>(clip));
  GatherParameters(&waited);
  store_.RefreshCompute();
  store_.ZeroGradients();
  gradients_reduced_ = false;

  StepStats s{};
  s.grad_norm = norm;
  s.clip_coefficient = clip;
  s.comm_wait_seconds = waited;
  s.optimizer_seconds = SecondsSince(start) - waited;
  s.adam_step = adam_.step();
  s.memory = memory();
  return s;
}

void Trainer::Load(const float* params, const float* exp_avg, const float* exp_avg_sq,
                   const int64_t* adam_step) {
  if (adam_step != nullptr) adam_.set_step(*adam_step);  // validates first: nothing changed on error
  backend_->Activate();
  if (params != nullptr) {
    backend_->Copy(store_.params(), params, static_cast<size_t>(store_.size()) * sizeof(float));
    store_.RefreshCompute();
  }
  const size_t shard_bytes = static_cast<size_t>(adam_.shard().size()) * sizeof(float);
  if (exp_avg != nullptr) backend_->Copy(adam_.exp_avg(), exp_avg, shard_bytes);
  if (exp_avg_sq != nullptr) backend_->Copy(adam_.exp_avg_sq(), exp_avg_sq, shard_bytes);
}

void Trainer::CopyToHost(float* dst, const float* src, int64_t n) const {
  backend_->Activate();
  backend_->Copy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

MemoryStats Trainer::memory() const {
  return {device_->current(), device_->peak(), device_->budget(),
          host_->current(),   host_->peak(),   host_->budget()};
}

void Trainer::ResetPeak() {
  device_->ResetPeak();
  host_->ResetPeak();
}

}  // namespace longctx::train
