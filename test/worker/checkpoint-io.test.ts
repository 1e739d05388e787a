// saveCheckpoint in both of its modes — everything overlapped (a save the caller waits for) and one
// thread at a time (a save in the background of training) — writes the same checkpoint: files
// byte-identical, checksums verified, and loadCheckpoint gives back exactly the trainer's state.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parseManifest } from '../../checkpoints/manifest.js';
import { verifyCheckpoint } from '../../checkpoints/validate.js';
import { loadCheckpoint, saveCheckpoint, type RunState } from '../../worker-native/host/checkpoint-io.js';
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
});
