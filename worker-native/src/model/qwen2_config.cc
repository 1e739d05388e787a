#include "model/qwen2_config.h"

#include <cmath>
#include <stdexcept>

namespace longctx::model {

void Qwen2Config::Validate() const {
  auto positive = [](const char* field, int value) {
    if (value <= 0)
      throw std::invalid_argument(std::string("config.") + field + " must be a positive integer, got " +
                                  std::to_string(value));
  };
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("num_hidden_layers", num_hidden_layers);
  positive("vocab_size", vocab_size);
  if (hidden_size % num_attention_heads != 0)
    throw std::invalid_argument("config.hidden_size " + std::to_string(hidden_size) +
                                " is not divisible by num_attention_heads " +
                                std::to_string(num_attention_heads));
  if (num_attention_heads % num_key_value_heads != 0)
    throw std::invalid_argument("config.num_attention_heads " + std::to_string(num_attention_heads) +
                                " is not divisible by num_key_value_heads " +
                                std::to_string(num_key_value_heads));
  if (head_dim() % 2 != 0)
    throw std::invalid_argument("config: head_dim = hidden_size / num_attention_heads = " +
                                std::to_string(head_dim()) + " must be even for rotary embeddings");
  if (!(rope_theta > 0.0) || !std::isfinite(rope_theta))
    throw std::invalid_argument("config.rope_theta must be a positive finite number, got " +
                                std::to_string(rope_theta));
  if (!(rms_norm_eps > 0.0) || !std::isfinite(rms_norm_eps))
    throw std::invalid_argument("config.rms_norm_eps must be a positive finite number, got " +
                                std::to_string(rms_norm_eps));
}

int64_t Qwen2Layout::Add(const std::string& name, Shape shape, bool weight_decay) {
  const int64_t numel = NumElements(shape);
  views_.push_back({name, std::move(shape), total_, numel, weight_decay});
  total_ += numel;
  return views_.back().offset;
}

Qwen2Layout::Qwen2Layout(const Qwen2Config& c) {
  c.Validate();
  const int64_t hidden = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  embed_tokens_ = Add("model.embed_tokens.weight", {c.vocab_size, hidden}, true);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerOffsets o{};
    o.begin = total_;
    o.q_weight = Add(p + "self_attn.q_proj.weight", {q, hidden}, true);
    o.q_bias = Add(p + "self_attn.q_proj.bias", {q}, false);
    o.k_weight = Add(p + "self_attn.k_proj.weight", {kv, hidden}, true);
    o.k_bias = Add(p + "self_attn.k_proj.bias", {kv}, false);
    o.v_weight = Add(p + "self_attn.v_proj.weight", {kv, hidden}, true);
    o.v_bias = Add(p + "self_attn.v_proj.bias", {kv}, false);
    o.o_weight = Add(p + "self_attn.o_proj.weight", {hidden, q}, true);
    o.gate_weight = Add(p + "mlp.gate_proj.weight", {inter, hidden}, true);
    o.up_weight = Add(p + "mlp.up_proj.weight", {inter, hidden}, true);
    o.down_weight = Add(p + "mlp.down_proj.weight", {hidden, inter}, true);
    o.input_norm = Add(p + "input_layernorm.weight", {hidden}, false);
    o.post_attention_norm = Add(p + "post_attention_layernorm.weight", {hidden}, false);
    o.end = total_;
    layers_.push_back(o);
  }
  final_norm_ = Add("model.norm.weight", {hidden}, false);
  lm_head_ = c.tie_word_embeddings ? embed_tokens_ : Add("lm_head.weight", {c.vocab_size, hidden}, true);
}

const ParamView& Qwen2Layout::Find(const std::string& name) const {
  for (const auto& v : views_)
    if (v.name == name) return v;
  throw std::out_of_range("no parameter named '" + name + "'");
}

}  // namespace longctx::model
