import test from 'ava';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  beginCheckpoint,
  commitCheckpoint,
  temporaryFolder,
  waitForParts,
  writeJsonFile,
  writePartRecord,
} from '../../checkpoints/commit.js';
import { checkpointFolderName } from '../../checkpoints/manifest.js';
import {
  optimizerFileName,
  readOptimizerRange,
  shardRange,
  writeOptimizerShard,
} from '../../checkpoints/optimizer-shards.js';
import { applyRetention, stepsToDelete } from '../../checkpoints/retention.js';
import { asFloat32, encodeHeader, readSafetensors, writeSafetensors } from '../../checkpoints/safetensors.js';
import { chooseResumeCheckpoint, verifyCheckpoint } from '../../checkpoints/validate.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'longctx-ckpt-'));
}

/** Writes a small complete checkpoint the way a 1-rank worker does. */
async function save(root: string, step: number, value: number): Promise<string> {
  const tmp = await beginCheckpoint(root, step);
  const weights = Float32Array.from({ length: 64 }, (_, i) => value + i);
  const model = await writeSafetensors(join(tmp, 'model.safetensors'), [
    { name: 'model.norm.weight', dtype: 'F32', shape: [64], data: weights },
  ]);
  const [stateName, state] = await writeJsonFile(tmp, 'trainer_state.json', { step });
  return commitCheckpoint(root, tmp, {
    step,
    worldSize: 1,
    jobId: 'job',
    config: {},
    files: { 'model.safetensors': model, [stateName]: state },
  });
}

test('safetensors: header layout is the Hugging Face format and tensors round-trip', async (t) => {
  const dir = await tempDir();
  const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const b = Float32Array.from([-1.5]);
  const path = join(dir, 'x.safetensors');
  const written = await writeSafetensors(
    path,
    [
      { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
      { name: 'b', dtype: 'F32', shape: [1], data: b },
    ],
    { format: 'pt' },
  );
  const raw = await readFile(path);
  const headerLength = Number(raw.readBigUInt64LE(0));
  t.is((8 + headerLength) % 8, 0, 'data section starts 8-byte aligned');
  const header = JSON.parse(raw.subarray(8, 8 + headerLength).toString()) as Record<
    string,
    { data_offsets: number[] }
  >;
  t.deepEqual(header.a?.data_offsets, [0, 24]);
  t.deepEqual(header.b?.data_offsets, [24, 28]);
  t.is(raw.byteLength, written.bytes);
  const back = await readSafetensors(path);
  t.deepEqual(Array.from(asFloat32(back.tensors.get('a')!)), [1, 2, 3, 4, 5, 6]);
  t.deepEqual(back.header.metadata, { format: 'pt' });
  t.throws(() => encodeHeader([{ name: 'a', dtype: 'F32', shape: [3], data: a }]), {
    message: /has 24 bytes.*needs 12/,
  });
  await rm(dir, { recursive: true });
});

test('safetensors: written in chunks and flushed as it goes, the file and its sha256 are the same', async (t) => {
  const dir = await tempDir();
  // Sizes that do not divide evenly into the chunks, so every tensor ends on a partial chunk.
  const tensors = [
    {
      name: 'w',
      dtype: 'F32' as const,
      shape: [37, 5],
      data: Float32Array.from({ length: 185 }, (_, i) => i),
    },
    { name: 'v', dtype: 'F32' as const, shape: [3], data: Float32Array.from([7, 8, 9]) },
  ];
  const files = [];
  const ways = [
    { chunkBytes: 1, flushBytes: 1 },
    { chunkBytes: 7, flushBytes: 100 },
    { chunkBytes: 64, flushBytes: 64 },
    { chunkBytes: 13, flushBytes: 40, overlap: false },
    {}, // the defaults: one chunk, no flush before the final fsync
  ];
  for (const [i, options] of ways.entries()) {
    const path = join(dir, `w${i}.safetensors`);
    const written = await writeSafetensors(path, tensors, { format: 'pt' }, options);
    const raw = await readFile(path);
    const what = JSON.stringify(options);
    t.is(written.bytes, raw.byteLength, `${what}: byte count`);
    t.is(written.sha256, createHash('sha256').update(raw).digest('hex'), `${what}: sha256 of the file`);
    files.push(raw);
  }
  for (const raw of files.slice(1))
    t.true(raw.equals(files[0]!), 'same bytes whatever the chunks and flushes');
  await t.throwsAsync(writeSafetensors(join(dir, 'bad.safetensors'), tensors, {}, { chunkBytes: 0 }), {
    message: 'safetensors: chunkBytes must be a positive integer, got 0',
  });
  await t.throwsAsync(writeSafetensors(join(dir, 'bad.safetensors'), tensors, {}, { flushBytes: 1.5 }), {
    message: 'safetensors: flushBytes must be a positive integer, got 1.5',
  });
  await rm(dir, { recursive: true });
});

test('a committed checkpoint verifies; a flipped byte or a truncated file does not', async (t) => {
  const root = await tempDir();
  const dir = await save(root, 200, 1);
  t.is(dir, join(root, 'step-00000200'));
  t.true((await verifyCheckpoint(dir)).valid);

  const model = join(dir, 'model.safetensors');
  const bytes = await readFile(model);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 3) ^ 0x40, bytes.length - 3);
  await writeFile(model, bytes);
  const flipped = await verifyCheckpoint(dir);
  t.false(flipped.valid);
  t.regex(flipped.valid ? '' : flipped.reason, /model\.safetensors fails its sha256 check/);

  await truncate(model, 10);
  const cut = await verifyCheckpoint(dir);
  t.regex(cut.valid ? '' : cut.reason, /model\.safetensors has 10 bytes, the manifest says/);
  await rm(root, { recursive: true });
});

test('resume takes the newest valid checkpoint and names the ones it skipped', async (t) => {
  const root = await tempDir();
  await save(root, 100, 1);
  await save(root, 200, 2);
  const newest = await save(root, 300, 3);
  await appendFile(join(newest, 'trainer_state.json'), ' ');
  // A save that crashed before its rename is invisible to resume.
  await mkdir(temporaryFolder(root, 400));
  // A folder without a manifest (e.g. copied by hand, half done) is skipped too.
  await mkdir(join(root, checkpointFolderName(350)));
  const choice = await chooseResumeCheckpoint(root);
  t.is(choice.checkpoint?.step, 200);
  t.is(choice.warnings.length, 2);
  t.regex(choice.warnings[0]!, /step-00000350: manifest\.json is missing/);
  t.regex(choice.warnings[1]!, /step-00000300: trainer_state\.json has \d+ bytes/);
  t.deepEqual(await chooseResumeCheckpoint(join(root, 'nothing-here')), { warnings: [] });
  await rm(root, { recursive: true });
});

test('retention keeps the last k plus every m-th and clears crashed temporary saves', async (t) => {
  t.deepEqual(
    stepsToDelete([100, 200, 300, 400, 500, 600], { keepLast: 2, keepEvery: 3, checkpointEvery: 100 }),
    [400, 200, 100],
  );
  t.deepEqual(stepsToDelete([100, 200], { keepLast: 5, keepEvery: 0, checkpointEvery: 100 }), []);
  t.throws(() => stepsToDelete([1], { keepLast: 0, keepEvery: 0, checkpointEvery: 1 }), {
    message: /keep must be at least 1/,
  });
  const root = await tempDir();
  for (const step of [10, 20, 30, 40]) await save(root, step, step);
  await mkdir(temporaryFolder(root, 50));
  // While a job trains, a later step's save may be in its temporary folder: keepTemporary spares it.
  await applyRetention(root, { keepLast: 3, keepEvery: 0, checkpointEvery: 10 }, { keepTemporary: true });
  t.deepEqual((await readdir(root)).sort(), [
    '.tmp-step-00000050',
    'step-00000020',
    'step-00000030',
    'step-00000040',
  ]);
  await applyRetention(root, { keepLast: 2, keepEvery: 0, checkpointEvery: 10 });
  t.deepEqual((await readdir(root)).sort(), ['step-00000030', 'step-00000040']);
  await rm(root, { recursive: true });
});

test('several ranks write parts; rank 0 commits once all are in', async (t) => {
  const root = await tempDir();
  const tmp = await beginCheckpoint(root, 7);
  const total = 1001;
  const world = 4;
  const full = Float32Array.from({ length: total }, (_, i) => i * 0.5);
  await Promise.all(
    Array.from({ length: world }, async (_, rank) => {
      const [begin, end] = shardRange(total, world, rank);
      const [name, record] = await writeOptimizerShard(tmp, rank, world, {
        begin,
        end,
        total,
        expAvg: full.slice(begin, end),
        expAvgSq: full.slice(begin, end).map((x) => x * x),
      });
      await writePartRecord(tmp, rank, { [name]: record });
    }),
  );
  const files = await waitForParts(tmp, world, 5000);
  t.is(Object.keys(files).length, world);
  const dir = await commitCheckpoint(root, tmp, {
    step: 7,
    worldSize: world,
    jobId: 'job',
    config: {},
    files,
  });
  const verdict = await verifyCheckpoint(dir);
  t.true(verdict.valid);
  if (!verdict.valid) return;
  // Resharded onto 2 ranks: each new rank reads just its range, assembled from the old shards.
  for (let rank = 0; rank < 2; rank++) {
    const [begin, end] = shardRange(total, 2, rank);
    const shard = await readOptimizerRange(dir, verdict.manifest, begin, end);
    t.deepEqual(Array.from(shard.expAvg), Array.from(full.slice(begin, end)));
    t.deepEqual(Array.from(shard.expAvgSq), Array.from(full.slice(begin, end).map((x) => x * x)));
  }
  t.true(optimizerFileName(3, 4) in verdict.manifest.files);
  await rm(root, { recursive: true });
});

test('a rank that never finishes its part makes the commit fail naming it', async (t) => {
  const root = await tempDir();
  const tmp = await beginCheckpoint(root, 1);
  await writePartRecord(tmp, 0, {});
  await writePartRecord(tmp, 2, {});
  await t.throwsAsync(waitForParts(tmp, 3, 100), { message: /ranks 1 did not finish writing/ });
  await rm(root, { recursive: true });
});
