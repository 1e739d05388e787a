#include "model/qwen2_model.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cpu/embedding.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "tensor/rng.h"

namespace longctx::model {

Qwen2Model::Qwen2Model(const Qwen2Config& config, std::shared_ptr<Arena> arena, ModelOptions options,
                       std::unique_ptr<SequenceAttention> attention)
    : config_(config),
      layout_(config),
      options_(options),
      arena_(std::move(arena)),
      attention_(std::move(attention)) {
  if (!arena_) throw std::invalid_argument("Qwen2Model needs an arena");
  if (options_.ce_chunk_tokens <= 0)
    throw std::invalid_argument("ce_chunk_tokens must be positive, got " +
                                std::to_string(options_.ce_chunk_tokens));
  if (!attention_) attention_ = std::make_unique<LocalCausalAttention>(arena_);
  kernels_ = std::make_unique<CpuModelKernels>(arena_, *attention_);
  params_ = Tensor::Zeros(arena_, {layout_.NumParameters()});
  grads_ = Tensor::Zeros(arena_, {layout_.NumParameters()});
}

void InitQwen2Parameters(const Qwen2Layout& layout, float* params, uint64_t seed, double initializer_range) {
  const auto& views = layout.views();
  for (size_t k = 0; k < views.size(); ++k) {
    const ParamView& v = views[k];
    float* p = params + v.offset;
    if (v.shape.size() == 2) {
      FillNormal(p, v.numel, initializer_range, seed, k);
    } else {
      const bool norm = v.name.find("norm") != std::string::npos;
      for (int64_t i = 0; i < v.numel; ++i) p[i] = norm ? 1.0f : 0.0f;
    }
  }
}

void Qwen2Model::InitParameters(uint64_t seed) {
  InitQwen2Parameters(layout_, params_.data(), seed, options_.initializer_range);
}

LayerTensors<const void*> Qwen2Model::Weights(int layer) const {
  return LayerWeightsAt(params_.data(), sizeof(float), layout_.layer(layer));
}

LayerTensors<float*> Qwen2Model::Grads(int layer) {
  return LayerTensors<float*>::At(grads_.data(), layout_.layer(layer));
}

void CheckQwen2Inputs(const Qwen2Config& config, const int32_t* ids, const int32_t* positions,
                      const int32_t* labels, int tokens) {
  if (tokens <= 0)
    throw std::invalid_argument("a step needs at least one token, got " + std::to_string(tokens));
  cpu::CheckTokenIds(ids, tokens, config.vocab_size, "ids");
  cpu::CheckRope(positions, tokens, config.head_dim(), config.rope_theta);
  cpu::CheckLabels(labels, tokens, config.vocab_size);
}

StepLoss Qwen2Model::ForwardBackward(const int32_t* ids, const int32_t* positions, const int32_t* labels,
                                     int tokens, std::optional<double> grad_scale) {
  CheckQwen2Inputs(config_, ids, positions, labels, tokens);
  const int T = tokens, C = config_.hidden_size, V = config_.vocab_size, L = config_.num_hidden_layers;
  const int64_t count = cpu::CountLabels(labels, T);
  const double scale = grad_scale ? *grad_scale : (count > 0 ? 1.0 / static_cast<double>(count) : 0.0);
  const float* params = params_.data();
  const RopeCache rope = BuildRopeCache(*kernels_, arena_, config_, positions, T);
  const LayerContext ctx{config_, arena_, *kernels_, rope, T};

  // Forward. stream[l] is the input of layer l; stream[L] feeds the final norm.
  std::vector<Tensor> stream(L + 1);
  std::vector<LayerActivations> saved(L);
  stream[0] = Tensor::Empty(arena_, {T, C});
  cpu::EmbeddingForward(stream[0].data(), ids, params + layout_.embed_tokens(), T, C);
  for (int l = 0; l < L; ++l) {
    stream[l + 1] = Tensor::Empty(arena_, {T, C});
    LayerForward(ctx, Weights(l), stream[l].data(), stream[l + 1].data(), &saved[l]);
  }
  Tensor final_norm = Tensor::Empty(arena_, {T, C});
  Tensor final_rstd = Tensor::Empty(arena_, {T});
  cpu::RmsNormForward(final_norm.data(), final_rstd.data(), stream[L].data(), params + layout_.final_norm(),
                      T, C, static_cast<float>(config_.rms_norm_eps));

  // Loss and its gradient w.r.t. the final norm's output, a chunk of tokens at a time.
  Tensor dfinal = Tensor::Zeros(arena_, {T, C});
  cpu::CrossEntropyResult ce;
  {
    const int chunk = std::min(options_.ce_chunk_tokens, T);
    Tensor workspace = Tensor::Empty(arena_, {cpu::ChunkedCrossEntropyWorkspace(chunk, V)});
    ce = cpu::ChunkedCrossEntropy(final_norm.data(), params + layout_.lm_head(), labels, T, C, V, chunk,
                                  static_cast<float>(scale), dfinal.data(), grads_.data() + layout_.lm_head(),
                                  workspace.data());
  }
  final_norm.Release();

  // Backward: grad carries dL/d stream[l] down the layers.
  Tensor grad = Tensor::Zeros(arena_, {T, C});
  cpu::RmsNormBackward(grad.data(), grads_.data() + layout_.final_norm(), dfinal.data(), stream[L].data(),
                       params + layout_.final_norm(), final_rstd.data(), T, C);
  dfinal.Release();
  stream[L].Release();
  for (int l = L - 1; l >= 0; --l) {
    LayerBackward(ctx, Weights(l), Grads(l), stream[l].data(), saved[l], grad.data());
    saved[l].Release();
    stream[l].Release();
  }
  cpu::EmbeddingBackward(grads_.data() + layout_.embed_tokens(), grad.data(), ids, T, C);
  return {ce.loss_sum, ce.count};
}

StepLoss Qwen2Model::Forward(const int32_t* ids, const int32_t* positions, const int32_t* labels,
                             int tokens) {
  CheckQwen2Inputs(config_, ids, positions, labels, tokens);
  const int T = tokens, C = config_.hidden_size, V = config_.vocab_size, L = config_.num_hidden_layers;
  const float* params = params_.data();
  const RopeCache rope = BuildRopeCache(*kernels_, arena_, config_, positions, T);
  const LayerContext ctx{config_, arena_, *kernels_, rope, T};

  Tensor x = Tensor::Empty(arena_, {T, C});
  cpu::EmbeddingForward(x.data(), ids, params + layout_.embed_tokens(), T, C);
  for (int l = 0; l < L; ++l) {
    Tensor out = Tensor::Empty(arena_, {T, C});
    LayerActivations scratch;
    LayerForward(ctx, Weights(l), x.data(), out.data(), &scratch);
    x = std::move(out);
  }
  Tensor final_norm = Tensor::Empty(arena_, {T, C});
  Tensor final_rstd = Tensor::Empty(arena_, {T});
  cpu::RmsNormForward(final_norm.data(), final_rstd.data(), x.data(), params + layout_.final_norm(), T, C,
                      static_cast<float>(config_.rms_norm_eps));
  x.Release();
  const int chunk = std::min(options_.ce_chunk_tokens, T);
  Tensor workspace = Tensor::Empty(arena_, {cpu::ChunkedCrossEntropyWorkspace(chunk, V)});
  cpu::CrossEntropyResult ce =
      cpu::ChunkedCrossEntropy(final_norm.data(), params + layout_.lm_head(), labels, T, C, V, chunk, 0.0f,
                               nullptr, nullptr, workspace.data());
  return {ce.loss_sum, ce.count};
}

}  // namespace longctx::model
