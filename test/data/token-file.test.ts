import { join } from 'node:path';
import { truncateSync } from 'node:fs';

import test from 'ava';

import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { openTokenFile, type TokenShard } from '../../worker-native/token-file.js';
import { native } from '../../worker-native/native.js';
import { zigzagPositions } from '../../core/zigzag.js';
import { readTokens, tempDir, writeTokenFile } from './fixtures.js';

/** Puts every rank's shard back in sequence order (the inverse of the zigzag map). */
function unzigzag(shards: TokenShard[], seqLen: number) {
  const inputs = new Int32Array(seqLen).fill(-1);
  const labels = new Int32Array(seqLen).fill(-1);
  const seen = new Int32Array(seqLen);
  for (const shard of shards) {
    shard.positions.forEach((p, i) => {
      inputs[p] = shard.inputIds[i]!;
      labels[p] = shard.labels[i]!;
      seen[p]!++;
    });
  }
  return { inputs, labels, seen };
}

test('zigzag shards for N = 1, 2, 4, 8 reassemble the sequence read in full from the file', async (t) => {
  const dir = tempDir(t);
  const corpus = join(dir, 'c.jsonl');
  await synth(corpus, { docs: 30, seed: 4, minChars: 50, maxChars: 800 });
  const { indexPath, tokenPath } = await pack({ inputs: [corpus], out: join(dir, 'c.bin'), seed: 1 });
  const stream = readTokens(tokenPath);
  const file = await openTokenFile(indexPath);
  t.teardown(() => file.close());
  const seqLen = 128;
  const sequences = Math.floor((stream.length - 1) / seqLen);
  t.is(file.tokens, stream.length);
  t.is(file.sequences(seqLen), sequences);
  t.true(sequences >= 3);

  for (const world of [1, 2, 4, 8]) {
    for (const k of [0, 1, sequences - 1]) {
      const shards = Array.from({ length: world }, (_, r) => file.readShard(k, seqLen, r, world));
      shards.forEach((s, r) => {
        t.is(s.inputIds.length, seqLen / world);
        t.is(s.epoch, 0);
        t.is(s.sequence, k);
        t.deepEqual(
          s.positions,
          zigzagPositions(seqLen, world, r),
          'positions are the global ones, local order',
        );
      });
      const { inputs, labels, seen } = unzigzag(shards, seqLen);
      t.true(
        seen.every((c) => c === 1),
        `N=${world}: every position exactly once`,
      );
      const window = stream.subarray(k * seqLen, k * seqLen + seqLen + 1);
      t.deepEqual(Array.from(inputs), Array.from(window.subarray(0, seqLen)), `N=${world} k=${k} inputs`);
      t.deepEqual(
        Array.from(labels),
        Array.from(window.subarray(1)),
        `N=${world} k=${k} labels (shifted by one)`,
      );
    }
  }
});

test('sequence numbers past the last wrap around to 0 with an epoch count', (t) => {
  const dir = tempDir(t);
  const seqLen = 8;
  // 3 sequences need 3·8 + 1 = 25 tokens; 30 tokens still make 3 (floor(29 / 8)).
  const ids = Array.from({ length: 30 }, (_, i) => (i * 7) % 256);
  const { tokenPath } = writeTokenFile(dir, 't.bin', ids);
  const file = native().openTokenFile(tokenPath, 30, 259);
  t.teardown(() => file.close());
  t.is(file.sequences(seqLen), 3);
  for (const [n, epoch, sequence] of [
    [2, 0, 2],
    [3, 1, 0],
    [5, 1, 2],
    [9, 3, 0],
  ] as const) {
    const shard = file.readShard(n, seqLen, 1, 2);
    const same = file.readShard(sequence, seqLen, 1, 2);
    t.is(shard.epoch, epoch);
    t.is(shard.sequence, sequence);
    t.deepEqual(shard.inputIds, same.inputIds);
    t.deepEqual(shard.labels, same.labels);
    // Rank 1 of 2 holds chunks 1 and 2 (of 4): positions 2,3 and 4,5.
    t.deepEqual(Array.from(shard.positions), [2, 3, 4, 5]);
    t.deepEqual(
      Array.from(shard.inputIds),
      [2, 3, 4, 5].map((p) => ids[sequence * seqLen + p]!),
    );
  }
  t.is(file.tokenAt(29), ids[29]!);
  t.throws(() => file.tokenAt(30), { instanceOf: RangeError, message: /token index 30 is past the end/ });
});

test('the number of sequences is floor((tokens - 1) / S)', (t) => {
  const dir = tempDir(t);
  for (const [tokens, seqLen, sequences] of [
    [17, 8, 2],
    [16, 8, 1],
    [9, 8, 1],
    [8, 8, 0],
    [0, 8, 0],
  ] as const) {
    const { tokenPath } = writeTokenFile(dir, `n${tokens}.bin`, new Array<number>(tokens).fill(1));
    const file = native().openTokenFile(tokenPath, tokens, 259);
    t.is(file.sequences(seqLen), sequences, `${tokens} tokens`);
    if (sequences === 0) {
      t.throws(() => file.readShard(0, seqLen, 0, 1), {
        instanceOf: RangeError,
        message: `token file ${tokenPath} has ${tokens} tokens, fewer than one sequence of seq_len 8 needs (9)`,
      });
    }
    file.close();
  }
});

test('opening checks the size against the index; reads check shapes and token ids', async (t) => {
  const dir = tempDir(t);
  const { tokenPath, indexPath } = writeTokenFile(dir, 'v.bin', [256, 1, 2, 300, 4, 5, 6, 7, 8]);
  t.throws(() => native().openTokenFile(tokenPath, 10, 259), {
    message: `token file ${tokenPath} is 36 bytes but its index says 10 tokens (40 bytes): the file is truncated or does not belong to this index; pack it again`,
  });
  t.throws(() => native().openTokenFile(join(dir, 'missing.bin'), 1, 259), {
    message: /cannot open token file .*missing\.bin: No such file or directory/,
  });
  t.throws(() => native().openTokenFile(tokenPath, -1, 259), {
    instanceOf: RangeError,
    message: 'argument 1 (expectedTokens) must be an integer >= 0, got -1',
  });

  const file = await openTokenFile(tokenPath);
  t.is(file.indexPath, indexPath);
  t.throws(() => file.readShard(0, 6, 0, 2), {
    instanceOf: RangeError,
    message: 'seq_len 6 is not divisible by 2 × 2 ranks = 4 (zigzag needs 4 equal chunks)',
  });
  t.throws(() => file.readShard(0, 4, 2, 2), { instanceOf: RangeError, message: 'rank 2 is outside 0..1' });
  // Token 3 is 300, past the byte tokenizer's 259 ids: the file does not match its tokenizer.
  t.throws(() => file.readShard(0, 4, 0, 1), {
    message: `token file ${tokenPath}: token 3 is id 300, not below the vocab size 259 (the file does not match its tokenizer)`,
  });
  t.deepEqual(Array.from(file.readShard(1, 4, 0, 1).inputIds), [4, 5, 6, 7]);
  file.close();
  file.close();
  t.throws(() => file.readShard(1, 4, 0, 1), { message: `token file ${tokenPath} is closed` });

  truncateSync(tokenPath, 35);
  await t.throwsAsync(openTokenFile(indexPath), { message: /is 35 bytes but its index says 9 tokens/ });
});
