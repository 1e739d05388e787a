#include "train/model_pass.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/qwen2_layer.h"

namespace longctx::train {

using model::LayerActivations;
using model::LayerContext;
using model::LayerTensors;

ModelPass::ModelPass(const model::Qwen2Config& config, const model::Qwen2Layout& layout,
                     std::shared_ptr<Arena> device, model::ModelKernels& kernels, ParameterStore& store,
                     CheckpointPolicy policy, int ce_chunk_tokens)
    : config_(config),
      layout_(layout),
      device_(std::move(device)),
      kernels_(kernels),
      store_(store),
      policy_(policy),
      ce_chunk_tokens_(ce_chunk_tokens) {
  if (ce_chunk_tokens_ <= 0)
    throw std::invalid_argument("ceChunkTokens must be a positive integer, got " +
                                std::to_string(ce_chunk_tokens_));
}

ModelPass::StagedLayer ModelPass::StageLayer(int layer) const {
  const model::LayerOffsets& o = layout_.layer(layer);
  StagedLayer s{store_.Stage(o.begin, o.size()), {}};
  s.tensors = model::LayerWeightsAt(s.weights.data(), ElementBytes(store_.compute_type()), o.Relative());
  return s;
}

void ModelPass::PrefetchLayer(int layer) {
  const model::LayerOffsets& o = layout_.layer(layer);
  store_.Prefetch(o.begin, o.size());
}

model::StepLoss ModelPass::ForwardBackward(const int32_t* ids, const int32_t* positions,
                                           const int32_t* labels, int tokens, double grad_scale) {
  const int T = tokens, C = config_.hidden_size, V = config_.vocab_size, L = config_.num_hidden_layers;
  const int64_t table = static_cast<int64_t>(V) * C;
  const DType act = kernels_.activation_type();
  const model::RopeCache rope = model::BuildRopeCache(kernels_, device_, config_, positions, T);
  const LayerContext ctx{config_, device_, kernels_, rope, T};

  // Forward. stream[l] is the input of layer l, kept under every policy; stream[L] feeds the final norm.
  std::vector<Tensor> stream(L + 1);
  std::vector<LayerActivations> saved(L);
  {
    const auto embed = store_.Stage(layout_.embed_tokens(), table);
    if (L > 0) PrefetchLayer(0);
    stream[0] = Tensor::Empty(device_, {T, C}, act);
    kernels_.EmbeddingForward(stream[0].raw(), ids, embed.data(), T, C);
  }
  for (int l = 0; l < L; ++l) {
    const StagedLayer w = StageLayer(l);
    if (l + 1 < L) PrefetchLayer(l + 1);
    stream[l + 1] = Tensor::Empty(device_, {T, C}, act);
    model::LayerForward(ctx, w.tensors, stream[l].raw(), stream[l + 1].raw(), &saved[l]);
    switch (policy_.ForLayer(l)) {
      case LayerKeep::kEverything:
        break;
      case LayerKeep::kNothing:
        saved[l].Release();
        break;
      case LayerKeep::kAttention:
        saved[l].ReleaseAllButAttention();
        break;
    }
  }

  // Final norm, LM head and loss; grad becomes dL/d stream[L].
  Tensor grad = Tensor::Zeros(device_, {T, C}, act);
  model::LossSum ce;
  {
    const auto norm_weight = store_.Stage(layout_.final_norm(), C);
    const auto head = store_.Stage(layout_.lm_head(), table);
    if (L > 0) PrefetchLayer(L - 1);  // the backward's first layer
    Tensor final_norm = Tensor::Empty(device_, {T, C}, act);
    Tensor final_rstd = Tensor::Empty(device_, {T});
    kernels_.RmsNormForward(final_norm.raw(), final_rstd.data(), stream[L].raw(), norm_weight.data(), T, C,
                            static_cast<float>(config_.rms_norm_eps));
    Tensor dfinal = Tensor::Zeros(device_, {T, C}, act);
    {
      Tensor dhead = Tensor::Zeros(device_, {table});
      const int chunk = std::min(ce_chunk_tokens_, T);
      ce = kernels_.CrossEntropy(final_norm.raw(), head.data(), labels, T, C, V, chunk,
                                 static_cast<float>(grad_scale), dfinal.raw(), dhead.data());
      final_norm.Release();
      store_.AddGradients(layout_.lm_head(), dhead.data(), table);
    }
    Tensor dnorm_weight = Tensor::Zeros(device_, {C});
    kernels_.RmsNormBackward(grad.raw(), dnorm_weight.data(), dfinal.raw(), stream[L].raw(),
                             norm_weight.data(), final_rstd.data(), T, C);
    store_.AddGradients(layout_.final_norm(), dnorm_weight.data(), C);
  }
  stream[L].Release();

  // Backward through the layers, recomputing what the policy dropped.
  for (int l = L - 1; l >= 0; --l) {
    const StagedLayer w = StageLayer(l);
    if (l > 0) PrefetchLayer(l - 1);
    const model::LayerOffsets& offsets = layout_.layer(l);
    switch (policy_.ForLayer(l)) {
      case LayerKeep::kEverything:
        break;
      case LayerKeep::kNothing: {
        Tensor out = Tensor::Empty(device_, {T, C}, act);  // equals stream[l + 1], already consumed
        model::LayerForward(ctx, w.tensors, stream[l].raw(), out.raw(), &saved[l]);
        break;
      }
      case LayerKeep::kAttention: {
        Tensor out = Tensor::Empty(device_, {T, C}, act);
        model::LayerForwardToAttention(ctx, w.tensors, stream[l].raw(), &saved[l]);
        model::LayerForwardFromAttention(ctx, w.tensors, stream[l].raw(), out.raw(), &saved[l]);
        break;
      }
    }
    Tensor dlayer = Tensor::Zeros(device_, {offsets.size()});
    model::LayerBackward(ctx, w.tensors, LayerTensors<float*>::At(dlayer.data(), offsets.Relative()),
                         stream[l].raw(), saved[l], grad.raw());
    saved[l].Release();
    stream[l].Release();
    store_.AddGradients(offsets.begin, dlayer.data(), offsets.size());
  }
  {
    Tensor dembed = Tensor::Zeros(device_, {table});
    kernels_.EmbeddingBackward(dembed.data(), grad.raw(), ids, T, C);
    grad.Release();
    store_.AddGradients(layout_.embed_tokens(), dembed.data(), table);
  }
  return {ce.loss_sum, ce.count};
}

model::StepLoss ModelPass::Forward(const int32_t* ids, const int32_t* positions, const int32_t* labels,
                                   int tokens, const std::vector<model::EmbeddingSpan>& embeddings) {
  const int T = tokens, C = config_.hidden_size, V = config_.vocab_size, L = config_.num_hidden_layers;
  const int64_t table = static_cast<int64_t>(V) * C;
  const DType act = kernels_.activation_type();
  const model::RopeCache rope = model::BuildRopeCache(kernels_, device_, config_, positions, T);
  const LayerContext ctx{config_, device_, kernels_, rope, T};

  Tensor x = Tensor::Empty(device_, {T, C}, act);
  {
    const auto embed = store_.Stage(layout_.embed_tokens(), table);
    if (L > 0) PrefetchLayer(0);
    kernels_.EmbeddingForward(x.raw(), ids, embed.data(), T, C);
  }
  for (const model::EmbeddingSpan& span : embeddings)
    kernels_.SpliceRows(x.raw(), span.values, span.first, span.rows(C), C);
  for (int l = 0; l < L; ++l) {
    const StagedLayer w = StageLayer(l);
    if (l + 1 < L) PrefetchLayer(l + 1);
    Tensor out = Tensor::Empty(device_, {T, C}, act);
    LayerActivations scratch;
    model::LayerForward(ctx, w.tensors, x.raw(), out.raw(), &scratch);
    x = std::move(out);
  }
  const auto norm_weight = store_.Stage(layout_.final_norm(), C);
  Tensor final_norm = Tensor::Empty(device_, {T, C}, act);
  Tensor final_rstd = Tensor::Empty(device_, {T});
  kernels_.RmsNormForward(final_norm.raw(), final_rstd.data(), x.raw(), norm_weight.data(), T, C,
                          static_cast<float>(config_.rms_norm_eps));
  x.Release();
  const auto head = store_.Stage(layout_.lm_head(), table);
  const int chunk = std::min(ce_chunk_tokens_, T);
  const model::LossSum ce =
      kernels_.CrossEntropy(final_norm.raw(), head.data(), labels, T, C, V, chunk, 0.0f, nullptr, nullptr);
  return {ce.loss_sum, ce.count, ce.argmax_correct};
}

}  // namespace longctx::train
