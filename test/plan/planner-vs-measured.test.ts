// The planner's predicted peak device memory against what the native trainer's arena measures,
// over configurations that exercise every term: checkpointing policies, offload modes, sequence
// lengths, tied and untied heads, GQA shapes. The rule: within 10% (the planner then keeps a 10%
// safety margin on top).
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { parseSpec } from '../../orchestrator/spec/validate.js';
import { useRedis } from '../helpers/redis.js';
import { expectSuccess, runGang, stepLog } from '../helpers/worker-gang.js';

import { predictMemory } from '../../orchestrator/plan/memory-model.js';
import type { ActivationCheckpointing, Offload } from '../../core/policies.js';
import { MODEL_PRESETS, type ModelConfig } from '../../core/model-config.js';
import { native } from '../../worker-native/native.js';
import '../../worker-native/trainer.js';

interface Config {
  name: string;
  config: ModelConfig;
  seqLen: number;
  ac: ActivationCheckpointing;
  offload: Offload;
}

const redis = useRedis(test);
const small = MODEL_PRESETS.small!;
const untied: ModelConfig = {
  ...small,
  hidden_size: 128,
  intermediate_size: 352,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  num_hidden_layers: 3,
  tie_word_embeddings: false,
};

const configs: Config[] = [
  { name: 'small, no checkpointing, no offload', config: small, seqLen: 1024, ac: 'none', offload: 'none' },
  { name: 'small, full checkpointing', config: small, seqLen: 1024, ac: 'full', offload: 'none' },
  {
    name: 'small, selective, optimizer offload',
    config: small,
    seqLen: 1024,
    ac: 'selective',
    offload: 'optimizer',
  },
  {
    name: 'small, every-2, params+optimizer offload',
    config: small,
    seqLen: 1024,
    ac: 'every-2',
    offload: 'params+optimizer',
  },
  {
    name: 'small, long sequence, full + params+optimizer',
    config: small,
    seqLen: 4096,
    ac: 'full',
    offload: 'params+optimizer',
  },
  { name: 'untied head, GQA 8/2, selective', config: untied, seqLen: 768, ac: 'selective', offload: 'none' },
  {
    name: 'untied head, no checkpointing, optimizer offload',
    config: untied,
    seqLen: 2048,
    ac: 'none',
    offload: 'optimizer',
  },
];

function tokens(n: number, seed: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (i * 7919 + seed) % 256);
}

for (const c of configs) {
  test.serial(`planned peak within 10% of measured: ${c.name}`, async (t) => {
    const trainer = await native().createTrainer(null, {
      config: c.config,
      seed: 1,
      deviceBudgetBytes: 4 * 2 ** 30,
      hostBudgetBytes: 4 * 2 ** 30,
      activationCheckpointing: c.ac,
      offload: c.offload,
      optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, gradClip: 1 },
    });
    try {
      const ids = tokens(c.seqLen, 1);
      const positions = Int32Array.from({ length: c.seqLen }, (_, i) => i);
      const labels = tokens(c.seqLen, 2);
      await trainer.accumulate(ids, positions, labels, 1);
      await trainer.step(1e-4);
      const measured = trainer.memory().devicePeak;
      const predicted = predictMemory({
        config: c.config,
        seqLen: c.seqLen,
        devices: 1,
        precision: 'fp32',
        activationCheckpointing: c.ac,
        offload: c.offload,
      }).peak;
      const error = (predicted - measured) / measured;
      t.log(`measured ${measured} bytes, predicted ${predicted} bytes (${(100 * error).toFixed(2)}%)`);
      t.true(
        Math.abs(error) <= 0.1,
        `predicted ${predicted} vs measured ${measured}: ${(100 * error).toFixed(1)}%`,
      );
    } finally {
      trainer.close();
    }
  });
}

// Under context parallelism the ring's K/V buffers and its dK/dV accumulators count too: run a
// real 2-rank gang of workers and read the device peak each rank reported for its first step.
test.serial('planned peak within 10% of measured: 2 ranks with ring attention, selective', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'longctx-plan-ring-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await synth(join(root, 'corpus.jsonl'), { docs: 60, seed: 5 });
  const packed = await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 5 });
  const parsed = parseSpec(`
name: plan-ring
model: { preset: small }
data: { path: ${packed.indexPath} }
seq_len: 1024
devices: 2
steps: 1
activation_checkpointing: selective
offload: none
checkpoint: { every: 100, keep: 1 }
`);
  if (!parsed.ok) return t.fail(JSON.stringify(parsed.errors));
  const runDir = join(root, 'run');
  expectSuccess(
    t,
    await runGang(t, {
      spec: parsed.spec,
      jobId: 'plan-ring',
      attempt: 1,
      world: 2,
      runDir,
      redisUrl: redis().url,
    }),
  );
  const predicted = predictMemory({
    config: small,
    seqLen: 1024,
    devices: 2,
    precision: 'fp32',
    activationCheckpointing: 'selective',
    offload: 'none',
  });
  for (const rank of [0, 1]) {
    const [first] = await stepLog(runDir, rank);
    const measured = first!.deviceBytesPeak;
    const error = (predicted.peak - measured) / measured;
    t.log(
      `rank ${rank}: measured ${measured} bytes, predicted ${predicted.peak} bytes (${(100 * error).toFixed(2)}%)`,
    );
    t.true(Math.abs(error) <= 0.1);
  }
});
