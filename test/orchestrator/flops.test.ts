import test from 'ava';

import { matmulParameters, mfu, trainingFlopsPerSequence } from '../../orchestrator/plan/flops.js';
import { MODEL_PRESETS, parameterCount } from '../../core/model-config.js';

test('matmul parameters: everything but the norms, biases and the embedding lookup', (t) => {
  const c = MODEL_PRESETS['qwen2-7b']!;
  const headDim = c.hidden_size / c.num_attention_heads;
  const biases = c.num_hidden_layers * (c.hidden_size + 2 * c.num_key_value_heads * headDim);
  const norms = (2 * c.num_hidden_layers + 1) * c.hidden_size;
  t.is(matmulParameters(c), parameterCount(c) - biases - norms - c.vocab_size * c.hidden_size);
});

test('the seed job: 7B at 224K is dominated by attention', (t) => {
  const c = { ...MODEL_PRESETS['qwen2-7b']!, rope_theta: 1e9 };
  const flops = trainingFlopsPerSequence(c, 224000);
  const linear = 6 * matmulParameters(c) * 224000;
  // 6·N·S with N ≈ 7.07e9 matmul weights ≈ 9.5e15; attention 6·L·S²·hidden ≈ 3.0e16.
  t.true(Math.abs(linear - 9.5e15) / 9.5e15 < 0.01, `${linear}`);
  t.true(Math.abs(flops - linear - 3.02e16) / 3.02e16 < 0.02, `${flops - linear}`);
});

test('MFU divides achieved model FLOP/s by the peak of all devices', (t) => {
  t.is(mfu(8e15, 2, 8, 1e15), 0.5);
  t.is(mfu(1, 0, 8, 1), 0);
});
