// Model configurations by name, with Hugging Face Qwen2 config.json field names. `tiny` is for
// tests, `small` for the demo, the rest are the real Qwen2 sizes the planner plans for.

/** Hugging Face Qwen2 config.json fields the model reads (extra fields are ignored). */
export interface Qwen2Config {
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  num_hidden_layers: number;
  vocab_size: number;
  rope_theta: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  /** Must be 'silu' when present. */
  hidden_act?: string;
}

/** The Hugging Face config.json fields a job's model is described by (the native model's own). */
export type ModelConfig = Omit<Qwen2Config, 'hidden_act'>;

/** The byte-level tokenizer's vocabulary: 256 bytes + BOS, EOS, PAD. */
export const BYTE_VOCAB_SIZE = 259;

export const MODEL_PRESETS: Record<string, ModelConfig> = {
  tiny: {
    hidden_size: 64,
    intermediate_size: 128,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    vocab_size: BYTE_VOCAB_SIZE,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
  },
  small: {
    hidden_size: 256,
    intermediate_size: 688,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 4,
    vocab_size: BYTE_VOCAB_SIZE,
    rope_theta: 1e6,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
  },
  'qwen2-0.5b': {
    hidden_size: 896,
    intermediate_size: 4864,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    num_hidden_layers: 24,
    vocab_size: 151936,
    rope_theta: 1e6,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
  },
  'qwen2-1.5b': {
    hidden_size: 1536,
    intermediate_size: 8960,
    num_attention_heads: 12,
    num_key_value_heads: 2,
    num_hidden_layers: 28,
    vocab_size: 151936,
    rope_theta: 1e6,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
  },
  'qwen2-7b': {
    hidden_size: 3584,
    intermediate_size: 18944,
    num_attention_heads: 28,
    num_key_value_heads: 4,
    num_hidden_layers: 28,
    vocab_size: 152064,
    rope_theta: 1e6,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
  },
};

/**
 * max_position_embeddings of the published models the real-size presets are (their config.json:
 * Qwen/Qwen2-0.5B, Qwen/Qwen2-1.5B and Qwen/Qwen2-7B say 131072). A checkpoint says at least this,
 * or its seq_len.
 */
export const PRESET_MAX_POSITIONS: Record<string, number> = {
  'qwen2-0.5b': 131072,
  'qwen2-1.5b': 131072,
  'qwen2-7b': 131072,
};

/** Parameters of a Qwen2 model with this config (weights only, biases on q/k/v). */
export function parameterCount(c: ModelConfig): number {
  const headDim = c.hidden_size / c.num_attention_heads;
  const kvDim = c.num_key_value_heads * headDim;
  const attention = c.hidden_size * c.hidden_size * 2 + c.hidden_size * kvDim * 2 + c.hidden_size + 2 * kvDim;
  const mlp = 3 * c.hidden_size * c.intermediate_size;
  const norms = 2 * c.hidden_size;
  const embed = c.vocab_size * c.hidden_size;
  return (
    c.num_hidden_layers * (attention + mlp + norms) +
    embed +
    c.hidden_size +
    (c.tie_word_embeddings ? 0 : embed)
  );
}
