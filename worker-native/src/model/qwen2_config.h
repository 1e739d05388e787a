// The Qwen2 architecture's hyperparameters (Hugging Face config.json field names) and the layout
// of its parameters in one flat float buffer.
//
// Why one flat buffer: all-reduce of gradients, AdamW, gradient clipping, offload and checkpoints
// all act on "the parameters" as a whole; with one contiguous buffer (and the gradients in a
// second one with the same layout) each of them is a single loop or a single call. Named views
// give each Hugging Face tensor its place in it, in the order of the HF state dict, so a
// checkpoint writer can walk the views and emit model.safetensors with HF names:
//   model.embed_tokens.weight                                [vocab, hidden]
//   model.layers.N.self_attn.{q,k,v}_proj.{weight,bias}      [heads·head_dim | kv_heads·head_dim, hidden]
//   model.layers.N.self_attn.o_proj.weight                   [hidden, heads·head_dim]
//   model.layers.N.mlp.{gate,up}_proj.weight                 [intermediate, hidden]
//   model.layers.N.mlp.down_proj.weight                      [hidden, intermediate]
//   model.layers.N.input_layernorm.weight                    [hidden]
//   model.layers.N.post_attention_layernorm.weight           [hidden]
//   model.norm.weight                                        [hidden]
//   lm_head.weight                                           [vocab, hidden]  (absent when tied)
// Views are dense (no padding): the buffer holds exactly NumParameters() floats, and the
// parameters of layer N are one contiguous range (what per-layer offload moves).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace longctx::model {

struct Qwen2Config {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int num_hidden_layers = 0;
  int vocab_size = 0;
  double rope_theta = 10000.0;  // transformers.Qwen2Config defaults
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;

  int head_dim() const { return hidden_size / num_attention_heads; }
  int q_dim() const { return num_attention_heads * head_dim(); }
  int kv_dim() const { return num_key_value_heads * head_dim(); }
  // Throws std::invalid_argument naming the field and the reason.
  void Validate() const;
};

struct ParamView {
  std::string name;  // Hugging Face name
  Shape shape;
  int64_t offset;  // in floats, into the flat buffer
  int64_t numel;
  // Hugging Face's Trainer decays matrices and embeddings, not biases or norm weights.
  bool weight_decay;
};

// Offsets (in floats) of one decoder layer's tensors.
struct LayerOffsets {
  int64_t q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, o_weight;
  int64_t gate_weight, up_weight, down_weight;
  int64_t input_norm, post_attention_norm;
  int64_t begin, end;  // the layer's contiguous range [begin, end)

  int64_t size() const { return end - begin; }
  // The same offsets counted from `begin`: for a buffer that holds this layer's range alone (a
  // weight copy staged on the device, a per-layer gradient buffer).
  LayerOffsets Relative() const {
    LayerOffsets r = *this;
    for (int64_t* o :
         {&r.q_weight, &r.q_bias, &r.k_weight, &r.k_bias, &r.v_weight, &r.v_bias, &r.o_weight, &r.gate_weight,
          &r.up_weight, &r.down_weight, &r.input_norm, &r.post_attention_norm, &r.begin, &r.end})
      *o -= begin;
    return r;
  }
};

class Qwen2Layout {
 public:
  explicit Qwen2Layout(const Qwen2Config& config);  // validates the config

  const std::vector<ParamView>& views() const { return views_; }
  const ParamView& Find(const std::string& name) const;  // throws std::out_of_range
  int64_t NumParameters() const { return total_; }

  int64_t embed_tokens() const { return embed_tokens_; }
  const LayerOffsets& layer(int index) const { return layers_.at(static_cast<size_t>(index)); }
  int64_t final_norm() const { return final_norm_; }
  // The LM head's offset: the embedding's when the weights are tied.
  int64_t lm_head() const { return lm_head_; }

 private:
  int64_t Add(const std::string& name, Shape shape, bool weight_decay);
  std::vector<ParamView> views_;
  std::vector<LayerOffsets> layers_;
  int64_t total_ = 0;
  int64_t embed_tokens_ = 0, final_norm_ = 0, lm_head_ = 0;
};

// Pointers to one layer's tensors inside a flat buffer (P is const float*, float*, const double*...).
template <typename P>
struct LayerTensors {
  P q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, o_weight;
  P gate_weight, up_weight, down_weight;
  P input_norm, post_attention_norm;

  static LayerTensors At(P base, const LayerOffsets& o) {
    return {base + o.q_weight,  base + o.q_bias,      base + o.k_weight,   base + o.k_bias,
            base + o.v_weight,  base + o.v_bias,      base + o.o_weight,   base + o.gate_weight,
            base + o.up_weight, base + o.down_weight, base + o.input_norm, base + o.post_attention_norm};
  }
};

}  // namespace longctx::model
