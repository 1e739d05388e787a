// The tiny Qwen2 the model tests share: 2 layers, hidden 32, 4 heads over 2 KV heads (GQA),
// intermediate 48, vocab 64, 24 tokens at explicit non-contiguous positions, some labels ignored.
import { native } from '../../worker-native/native.js';
import type { Qwen2Config, Qwen2Model } from '../../worker-native/model.js';
import '../../worker-native/model.js';
import { random, randomInts } from '../kernels/numeric.js';

export const IGNORE = -100;

export function tinyConfig(tied = false): Qwen2Config {
  return {
    hidden_size: 32,
    intermediate_size: 48,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    vocab_size: 64,
    rope_theta: 1e6,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: tied,
  };
}

export interface Batch {
  ids: Int32Array;
  positions: Int32Array;
  labels: Int32Array;
}

export function tinyBatch(tokens = 24, seed = 7): Batch {
  const rand = random(seed);
  const ids = randomInts(tokens, rand, 64);
  const positions = Int32Array.from({ length: tokens }, (_, i) => 100 + 3 * i);
  const labels = randomInts(tokens, rand, 64);
  for (let i = 4; i < tokens; i += 5) labels[i] = IGNORE;
  return { ids, positions, labels };
}

/**
 * A model whose parameters are far from the HF init (matrices with std 0.3, norm weights
 * 1 ± 0.2, biases ± 0.2), so every nonlinearity and every bias actually shapes the gradients.
 */
export async function tinyModel(tied = false, budgetBytes = 16 << 20): Promise<Qwen2Model> {
  const model = new (native().Qwen2Model)(tinyConfig(tied), budgetBytes, {
    device: 'cpu:0',
    ceChunkTokens: 7,
    initializerRange: 0.3,
  });
  await model.initParameters(42);
  const params = model.getParameters();
  const rand = random(11);
  for (const view of model.parameterViews()) {
    if (view.shape.length !== 1) continue;
    for (let i = 0; i < view.numel; i++) params[view.offset + i]! += 0.2 * rand();
  }
  model.setParameters(params);
  return model;
}
