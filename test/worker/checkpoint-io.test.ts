// saveCheckpoint in both of its modes — everything overlapped (a save the caller waits for) and one
// thread at a time (a save in the background of training) — writes the same checkpoint: files
// byte-identical, checksums verified, and loadCheckpoint gives back exactly the trainer's state.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parseManifest } from '../../checkpoints/manifest.js';
import { verifyCheckpoint } from '../../checkpoints/validate.js';
import {
  hfConfig,
  loadCheckpoint,
  saveCheckpoint,
  type RunState,
} from '../../worker-native/host/checkpoint-io.js';
import { createTrainer } from '../../worker-native/trainer.js';
import { bitwiseEqual, rankTokens, sequence, tinyConfig, trainerOptions } from '../trainer/fixtures.js';

test('a save in the background writes the same checkpoint as an awaited one, and it loads back exactly', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'longctx-checkpoint-io-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const config = tinyConfig(2);
  const trainer = await createTrainer(null, trainerOptions(config));
  t.teardown(() => trainer.close());
  const x = rankTokens(sequence(3, 0, 64, config.vocab_size), 1, 0);
  await trainer.accumulate(x.ids, x.positions, x.labels, 1);
  await trainer.step(1e-2);
  const snapshot = trainer.snapshot();
  const state: RunState = {
    step: 7,
    adamStep: 1,
    sequenceCursor: 7,
    tokensSeen: 448,
    lastLoss: 4.1,
    seed: 5,
    worldSize: 1,
    dataSha256: 'ab'.repeat(32),
  };
  const saved = [];
  for (const background of [false, true]) {
    const checkpointsDir = join(root, background ? 'background' : 'awaited');
    const result = await saveCheckpoint(
      {
        checkpointsDir,
        jobId: 'job',
        rank: 0,
        world: 1,
        config: { ...config },
        trainedAs: { seqLen: 229_376, precision: 'fp32', specials: { bos: 256, eos: 257, pad: 258 } },
        views: trainer.parameterViews(),
        shard: trainer.shard,
        numParameters: trainer.numParameters,
        retention: { keepLast: 2, keepEvery: 0, checkpointEvery: 1 },
        partsTimeoutMs: 10_000,
      },
      snapshot,
      state,
      { background },
    );
    t.truthy(result, 'rank 0 commits and reports the checkpoint');
    const verdict = await verifyCheckpoint(result!.dir);
    t.true(verdict.valid, `${background ? 'background' : 'awaited'} save verifies`);
    saved.push(result!.dir);
  }
  const [awaited, background] = saved as [string, string];
  const manifests = await Promise.all(
    saved.map(async (dir) => parseManifest(await readFile(join(dir, 'manifest.json'), 'utf8'), dir)),
  );
  t.deepEqual(manifests[1]!.files, manifests[0]!.files, 'same files, sizes and sha256');
  for (const name of Object.keys(manifests[0]!.files)) {
    const [a, b] = await Promise.all([readFile(join(awaited, name)), readFile(join(background, name))]);
    t.true(a.equals(b), `${name} is byte-identical`);
  }
  const loaded = await loadCheckpoint(
    background,
    manifests[1]!,
    trainer.parameterViews(),
    trainer.numParameters,
    trainer.shard,
  );
  t.true(bitwiseEqual(loaded.params, snapshot.params));
  t.true(bitwiseEqual(loaded.expAvg, snapshot.expAvg) && bitwiseEqual(loaded.expAvgSq, snapshot.expAvgSq));
  t.is(loaded.adamStep, 1);
  t.deepEqual(loaded.state, { ...state, adamStep: 1 });

  // config.json as Hugging Face reads it: the trained context, not HF's 32768 default.
  const hf = JSON.parse(await readFile(join(background, 'config.json'), 'utf8')) as Record<string, unknown>;
  t.like(hf, {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    hidden_size: config.hidden_size,
    max_position_embeddings: 229_376,
    bos_token_id: 256,
    eos_token_id: 257,
    pad_token_id: 258,
    use_sliding_window: false,
    torch_dtype: 'float32',
  });
});

test("config.json: the dtype follows the precision, the context is at least the base model's", (t) => {
  const config = tinyConfig(2);
  const specials = { bos: 151643, eos: 151643, pad: 151643 };
  const bf16 = hfConfig(config, { seqLen: 4096, precision: 'bf16', specials, baseMaxPositions: 131072 });
  t.like(bf16, { torch_dtype: 'bfloat16', max_position_embeddings: 131072, bos_token_id: 151643 });
  const long = hfConfig(config, { seqLen: 229_376, precision: 'fp32', specials, baseMaxPositions: 131072 });
  t.like(long, { torch_dtype: 'float32', max_position_embeddings: 229_376 });
  t.is(hfConfig(config, { seqLen: 128, precision: 'fp32', specials }).max_position_embeddings, 128);
});
