// The planner's bf16 model is the CUDA trainer's allocations replayed (memory-model.ts). Its GPU
// check is test/cuda/trainer.test.ts (predicted vs the arena's measured peak, every policy and
// offload mode); these run anywhere and pin what the model says against what it must say.
import test from 'ava';

import { parameterLayout, predictMemory, type MemoryInputs } from '../../orchestrator/plan/memory-model.js';
import type { ModelConfig } from '../../core/model-config.js';

/** test/cuda/trainer.test.ts's model and sequence. */
const config: ModelConfig = {
  hidden_size: 128,
  intermediate_size: 256,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  num_hidden_layers: 2,
  vocab_size: 256,
  rope_theta: 1e6,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};
const inputs = (o: Partial<MemoryInputs>): MemoryInputs => ({
  config,
  seqLen: 128,
  devices: 1,
  precision: 'bf16',
  activationCheckpointing: 'none',
  offload: 'none',
  ceChunkTokens: 32,
  ...o,
});

test('the bf16 model gives, to the byte, the CUDA arena peaks an H200 measured', (t) => {
  // `make gpu-check` on an NVIDIA H200, 2026-11-28: the device arena's peak after one
  // accumulate and one step of test/cuda/trainer.test.ts's model (no checkpointing).
  t.is(predictMemory(inputs({ offload: 'none' })).peak, 8_289_792);
  t.is(predictMemory(inputs({ offload: 'optimizer' })).peak, 5_396_992);
});

test('under params+optimizer the GPU holds a prefetched layer beside the one in use, the CPU does not', (t) => {
  const perLayer = parameterLayout(config).perLayer;
  const gpu = predictMemory(inputs({ offload: 'params+optimizer' }));
  t.is(gpu.breakdown.weights, 2 * perLayer * 2); // two layers' bf16 weights at the peak
  const cpu = predictMemory(inputs({ precision: 'fp32', offload: 'params+optimizer' }));
  t.is(cpu.breakdown.weights, perLayer * 4);
});

test('on a GPU the ring counts its float32 dK/dV accumulators and running output', (t) => {
  // Two ranks hold half the tokens each; the ring's buffers are what the local kernel lacks.
  const ring = predictMemory(inputs({ seqLen: 256, devices: 2 }));
  t.true(ring.breakdown.ring_buffers > 0);
  const D = config.hidden_size / config.num_attention_heads;
  const T = 128;
  const kv = T * config.num_key_value_heads * D;
  // Backward: K/V held and arriving (bf16), dK/dV going on and arriving (float32).
  t.is(ring.breakdown.ring_buffers, 2 * (2 * kv * 2) + 2 * (2 * kv * 4));
});
