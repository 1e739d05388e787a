// V-NIAH: input embeddings replace the token embedding lookup at exactly the marked tokens (against
// a reference model whose embedding table holds those vectors), each rank gets the rows of its own
// zigzag chunks, embedding files are read and checked, and a V-NIAH evaluation scores the same on
// 1 and 4 ranks.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { zigzagPositions } from '../../core/zigzag.js';
import { ByteTokenizer } from '../../data/tokenizer.js';
import { IGNORE_INDEX, NiahGridError } from '../../eval/niah-cases.js';
import { evaluateNiah } from '../../eval/niah-run.js';
import { buildVniahCases } from '../../eval/vniah-cases.js';
import {
  EmbeddingFile,
  EmbeddingFileError,
  shardSpans,
  type EmbeddingSpanRef,
} from '../../eval/vniah-embeddings.js';
import type { Qwen2Config } from '../../worker-native/model.js';
import { createTrainer, type EmbeddingSpan } from '../../worker-native/trainer.js';
import { random } from '../kernels/numeric.js';
import { trainerOptions } from '../trainer/fixtures.js';
import { copyCorrect, writeCopyModel } from './fixtures.js';
import { bf16Bytes, spliceAgainstTableRows, writeEmbeddings, writeRawSafetensors } from './vniah-fixtures.js';

const tok = new ByteTokenizer();
const HIDDEN = 64;

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'longctx-vniah-test-'));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

const UNTIED: Qwen2Config = {
  hidden_size: HIDDEN,
  intermediate_size: 96,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  vocab_size: 259,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};

test('input embeddings replace the lookup at exactly the marked tokens (reference: those vectors as embedding rows)', async (t) => {
  const r = await spliceAgainstTableRows(() => createTrainer(null, trainerOptions(UNTIED)));
  // Bitwise: on the CPU a spliced row and a looked-up row are the same copy of the same floats.
  t.is(r.spliced.lossSum, r.reference.lossSum);
  t.is(r.spliced.argmaxCorrect, r.reference.argmaxCorrect);
  t.is(r.spliced.tokens, 63);
  // The ids under a span do not matter; the spans do, and one token off is another result.
  t.is(r.otherIds.lossSum, r.reference.lossSum);
  t.not(r.tokensOnly.lossSum, r.reference.lossSum);
  t.not(r.shifted.lossSum, r.reference.lossSum);
  t.log(`loss: spliced ${r.spliced.loss.toFixed(6)}, tokens only ${r.tokensOnly.loss.toFixed(6)}`);
});

test('bad spans are rejected naming embeddings[i] and the reason', async (t) => {
  const trainer = await createTrainer(null, trainerOptions(UNTIED));
  t.teardown(() => trainer.close());
  const T = 16;
  const ids = new Int32Array(T).fill(97);
  const positions = Int32Array.from({ length: T }, (_, i) => i);
  const labels = new Int32Array(T).fill(98);
  const rows = (n: number) => new Float32Array(n * HIDDEN);
  const bad: Array<[unknown, RegExp]> = [
    [
      [{ start: 14, rows: rows(3) }],
      /^embeddings\[0\] covers tokens 14\.\.16, outside this call's 16 tokens$/,
    ],
    [
      [
        { start: 0, rows: rows(4) },
        { start: 3, rows: rows(2) },
      ],
      /^embeddings\[1\] \(tokens 3\.\.4\) overlaps embeddings\[0\] \(tokens 0\.\.3\)$/,
    ],
    [
      [{ start: 0, rows: new Float32Array(HIDDEN + 1) }],
      /^embeddings\[0\]\.rows has 65 values, not a positive multiple of hidden_size 64$/,
    ],
    [[{ start: 0, rows: rows(0) }], /^embeddings\[0\]\.rows has 0 values/],
    [[{ start: -1, rows: rows(1) }], /embeddings\[0\]\.start must be an integer/],
    [[{ start: 0, rows: new Float64Array(HIDDEN) }], /^embeddings\[0\]\.rows must be a Float32Array$/],
    [{ start: 0 }, /embeddings\) must be an array of \{start, rows\}/],
  ];
  for (const [embeddings, message] of bad) {
    await t.throwsAsync(
      async () => trainer.evaluate(ids, positions, labels, embeddings as EmbeddingSpan[]),
      { message },
      JSON.stringify(embeddings),
    );
  }
  // The trainer is still usable.
  t.true(
    Number.isFinite((await trainer.evaluate(ids, positions, labels, [{ start: 15, rows: rows(1) }])).loss),
  );
});

test('each rank gets the rows of its own zigzag chunks, at their local indices', (t) => {
  const seqLen = 48;
  const spans: EmbeddingSpanRef[] = [
    { position: 1, rows: 20, file: 'h.safetensors', tensor: 'x', row: 0 },
    { position: 21, rows: 5, file: 'n.safetensors', tensor: 'y', row: 0 },
    { position: 26, rows: 17, file: 'h.safetensors', tensor: 'x', row: 20 },
  ];
  for (const world of [1, 2, 4]) {
    const seen = new Map<number, string>();
    for (let rank = 0; rank < world; rank++) {
      const positions = zigzagPositions(seqLen, world, rank);
      for (const { start, ref } of shardSpans(spans, seqLen, world, rank)) {
        for (let i = 0; i < ref.rows; i++) {
          const global = positions[start + i]!;
          t.is(global, ref.position + i, `world ${world} rank ${rank}: local ${start + i}`);
          t.false(seen.has(global));
          seen.set(global, `${ref.file}:${ref.row + i}`);
        }
      }
    }
    // Every spliced position exactly once, with the row the whole-sequence spans give it.
    const expected = new Map<number, string>();
    for (const s of spans)
      for (let i = 0; i < s.rows; i++) expected.set(s.position + i, `${s.file}:${s.row + i}`);
    t.deepEqual(
      [...seen.entries()].sort((a, b) => a[0] - b[0]),
      [...expected.entries()].sort((a, b) => a[0] - b[0]),
    );
  }
});

test('embedding files: F32, BF16 and F16, [rows, hidden] and [frames, tokens, hidden], read by rows', async (t) => {
  const values = Float32Array.from({ length: 6 * 4 }, (_, i) => (i - 12) / 8); // exact in bf16 and f16
  const f32 = join(dir, 'f32.safetensors');
  await writeEmbeddings(f32, 'frames', [2, 3, 4], values);
  const bf16 = join(dir, 'bf16.safetensors');
  await writeRawSafetensors(bf16, { rows: { dtype: 'BF16', shape: [6, 4], data: bf16Bytes(values) } });
  const f16 = join(dir, 'f16.safetensors');
  const half = new Uint16Array(values.length);
  // (i - 12) / 8 in binary16: sign, exponent and mantissa by hand for these few values.
  values.forEach((v, i) => (half[i] = toHalf(v)));
  await writeRawSafetensors(f16, {
    rows: { dtype: 'F16', shape: [6, 4], data: new Uint8Array(half.buffer) },
  });
  for (const path of [f32, bf16, f16]) {
    const file = await EmbeddingFile.open({ path }, 4);
    t.teardown(() => file.close());
    t.is(file.rows, 6);
    t.deepEqual(Array.from(await file.read(0, 6)), Array.from(values), path);
    t.deepEqual(Array.from(await file.read(2, 3)), Array.from(values.subarray(8, 20)), path);
  }
  const frames = await EmbeddingFile.open({ path: f32 }, 4);
  t.teardown(() => frames.close());
  t.is(frames.tokensPerFrame, 3);
  t.is(frames.tensor, 'frames');
  await t.throwsAsync(() => frames.read(4, 3), {
    instanceOf: EmbeddingFileError,
    message: `${f32}: tensor 'frames' has 6 rows, rows 4..6 were asked for`,
  });
});

test('bad embedding files are rejected naming the file, the field and the reason', async (t) => {
  const ok = new Float32Array(8 * 4);
  const two = join(dir, 'two.safetensors');
  await writeRawSafetensors(two, {
    a: { dtype: 'F32', shape: [8, 4], data: new Uint8Array(ok.buffer) },
    b: { dtype: 'F32', shape: [8, 4], data: new Uint8Array(ok.buffer) },
  });
  const wide = join(dir, 'wide.safetensors');
  await writeEmbeddings(wide, 'x', [2, 4, 5], new Float32Array(40));
  const ints = join(dir, 'ints.safetensors');
  await writeRawSafetensors(ints, { x: { dtype: 'I32', shape: [8, 4], data: new Uint8Array(128) } });
  const fp8 = join(dir, 'fp8.safetensors');
  await writeRawSafetensors(fp8, { x: { dtype: 'F8_E4M3', shape: [8, 4], data: new Uint8Array(32) } });
  const flat = join(dir, 'flat.safetensors');
  await writeEmbeddings(flat, 'x', [32], ok);
  const nan = join(dir, 'nan.safetensors');
  const withNan = new Float32Array(32);
  withNan[13] = Number.NaN;
  await writeEmbeddings(nan, 'x', [8, 4], withNan);
  const notSafetensors = join(dir, 'text.safetensors');
  await writeFile(notSafetensors, 'hello');
  const missing = join(dir, 'missing.safetensors');

  const cases: Array<[{ path: string; tensor?: string }, string]> = [
    [
      { path: wide },
      `${wide}: tensor 'x' has shape [2, 4, 5]: vectors of 5 values, the model's hidden_size is 4`,
    ],
    [{ path: ints }, `${ints}: tensor 'x' has dtype I32; embeddings must be F32, BF16 or F16`],
    [{ path: fp8 }, `${fp8}: tensor 'x' has dtype "F8_E4M3", which this reader does not know`],
    [{ path: two, tensor: 'c' }, `${two}: tensor 'c' is missing (the file holds: a, b)`],
    [{ path: two }, `${two}: holds 2 tensors (a, b): name the one to use`],
    [
      { path: flat },
      `${flat}: tensor 'x' has shape [32]; embeddings are [rows, hidden_size] or [frames, tokens_per_frame, hidden_size]`,
    ],
    [{ path: notSafetensors }, `${notSafetensors}: not a safetensors file (5 bytes)`],
    [{ path: missing }, `${missing}: does not exist or is not a file`],
  ];
  for (const [ref, message] of cases) {
    await t.throwsAsync(() => EmbeddingFile.open(ref, 4), { instanceOf: EmbeddingFileError, message });
  }
  const b = await EmbeddingFile.open({ path: two, tensor: 'b' }, 4);
  t.teardown(() => b.close());
  t.is(b.rows, 8);
  const n = await EmbeddingFile.open({ path: nan }, 4);
  t.teardown(() => n.close());
  await t.throwsAsync(() => n.read(0, 8), {
    message: `${nan}: tensor 'x' row 3 holds NaN (embeddings must be finite)`,
  });
});

test('V-NIAH cases: exact lengths, haystack rows around the needle on a frame boundary, labels only on the answer', async (t) => {
  const haystackPath = join(dir, 'grid-haystack.safetensors');
  await writeEmbeddings(haystackPath, 'frames', [40, 12, HIDDEN], new Float32Array(40 * 12 * HIDDEN));
  const needlePath = join(dir, 'grid-needle.safetensors');
  await writeEmbeddings(needlePath, 'needle', [8, HIDDEN], new Float32Array(8 * HIDDEN));
  const haystack = await EmbeddingFile.open({ path: haystackPath }, HIDDEN);
  t.teardown(() => haystack.close());
  const needleFile = await EmbeddingFile.open({ path: needlePath }, HIDDEN);
  t.teardown(() => needleFile.close());
  const needle = {
    kind: 'embeddings' as const,
    file: needleFile,
    question: 'What is the word?',
    answer: '7332',
  };
  const cases = buildVniahCases({
    contextLengths: [256, 480],
    depths: [0, 0.5, 1],
    tokenizer: tok,
    haystack,
    needle,
    seed: 0,
  });
  t.is(cases.length, 6);
  for (const c of cases) {
    t.is(c.ids.length, c.contextLength);
    t.true(tok.decode(c.ids).endsWith('\n\nWhat is the word?7332'));
    t.is(c.key, '7332');
    const [before, block, after] =
      c.depth === 0
        ? [undefined, ...c.embeddings!]
        : c.depth === 1
          ? [...c.embeddings!, undefined]
          : c.embeddings!;
    t.deepEqual(block, { position: c.needleStart, rows: 8, file: needlePath, tensor: 'needle', row: 0 });
    const k = before?.rows ?? 0;
    const haystackRows = (before?.rows ?? 0) + (after?.rows ?? 0);
    t.is(haystackRows, c.contextLength - 1 - 8 - '\n\nWhat is the word?'.length - 4);
    t.true(k % 12 === 0 || k === haystackRows, 'the needle sits between frames, or at the end');
    t.is(c.needleStart, 1 + k);
    if (after) t.deepEqual([after.position, after.row], [c.needleStart + 8, k]);
    t.true(Math.abs(k - c.depth * haystackRows) <= 6);
    const labelled = [...c.labels.entries()].filter(([, l]) => l !== IGNORE_INDEX).map(([i]) => i);
    t.deepEqual(
      labelled,
      [0, 1, 2, 3].map((i) => c.contextLength - 5 + i),
    );
  }
  t.throws(
    () => buildVniahCases({ contextLengths: [600], depths: [0], tokenizer: tok, haystack, needle, seed: 0 }),
    {
      instanceOf: NiahGridError,
      message: `haystack ${haystackPath}: tensor 'frames' has 480 rows, a case of 600 tokens needs ${600 - 32}`,
    },
  );
  t.throws(
    () =>
      buildVniahCases({
        contextLengths: [256],
        depths: [0],
        tokenizer: tok,
        haystack,
        needle: { ...needle, answer: ' ' },
        seed: 0,
      }),
    { message: 'answer: give the answer the needle shows' },
  );
});

test('V-NIAH evaluation on the ring: the copy model scores what it must; with attention, 1 and 4 ranks agree', async (t) => {
  const model = join(dir, 'copy');
  const shaped = join(dir, 'shaped');
  await Promise.all([mkdir(model), mkdir(shaped)]);
  await writeCopyModel(model, 0);
  await writeCopyModel(shaped, 0.15);
  const rand = random(5);
  const frames = Float32Array.from({ length: 48 * 12 * HIDDEN }, () => rand());
  const haystackPath = join(dir, 'ring-haystack.safetensors');
  await writeRawSafetensors(haystackPath, {
    video: { dtype: 'BF16', shape: [48, 12, HIDDEN], data: bf16Bytes(frames) },
  });
  const otherPath = join(dir, 'ring-haystack-2.safetensors');
  await writeEmbeddings(
    otherPath,
    'video',
    [48, 12, HIDDEN],
    frames.map((x) => -x),
  );
  const needlePath = join(dir, 'ring-needle.safetensors');
  await writeEmbeddings(
    needlePath,
    'needle',
    [8, HIDDEN],
    Float32Array.from({ length: 8 * HIDDEN }, () => rand()),
  );
  const haystack = await EmbeddingFile.open({ path: haystackPath }, HIDDEN);
  const other = await EmbeddingFile.open({ path: otherPath }, HIDDEN);
  const needleFile = await EmbeddingFile.open({ path: needlePath }, HIDDEN);
  t.teardown(async () => {
    await Promise.all([haystack.close(), other.close(), needleFile.close()]);
  });
  const grid = {
    contextLengths: [256, 512],
    depths: [0, 0.5, 1],
    tokenizer: tok,
    seed: 4,
    lengthMultiple: 8,
  };
  const needle = {
    kind: 'embeddings' as const,
    file: needleFile,
    question: 'What is the word?',
    answer: '4417',
  };
  const cases = buildVniahCases({ ...grid, haystack, needle });

  // No layers: every logit row is its own token's, so exactly the repeated answer tokens are right.
  const copy = await evaluateNiah(cases, { checkpoint: model, ranks: 4 });
  t.deepEqual(
    copy.map((r) => r.answerCorrect),
    cases.map(copyCorrect),
  );
  t.true(
    cases.map(copyCorrect).every((n) => n === 1),
    "'?4', '44', '41', '17': one repeat",
  );

  const one = await evaluateNiah(cases, { checkpoint: shaped, ranks: 1 });
  const four = await evaluateNiah(cases, { checkpoint: shaped, ranks: 4 });
  t.deepEqual(
    four.map((r) => [r.found, r.answerCorrect]),
    one.map((r) => [r.found, r.answerCorrect]),
  );
  for (const [i, r] of four.entries()) {
    t.true(
      Math.abs(r.answerLoss - one[i]!.answerLoss) <= 1e-5 * one[i]!.answerLoss,
      `${r.answerLoss} vs ${one[i]!.answerLoss}`,
    );
  }
  t.log('answer losses:', one.map((r) => r.answerLoss.toFixed(4)).join(' '));
  t.log('right answer tokens:', one.map((r) => r.answerCorrect).join(' '));
  t.true(one.some((r) => r.answerCorrect > 0));
  // The rows reach the model: another haystack gives other losses.
  const otherCases = buildVniahCases({ ...grid, haystack: other, needle });
  const withOther = await evaluateNiah(otherCases, { checkpoint: shaped, ranks: 1 });
  t.true(withOther.every((r, i) => Math.abs(r.answerLoss - one[i]!.answerLoss) > 1e-4 * one[i]!.answerLoss));

  // The text passkey needle in the same haystack.
  const passkey = buildVniahCases({ ...grid, haystack, needle: { kind: 'passkey' } });
  t.true(
    passkey.every(
      (c) => tok.decode(c.ids.subarray(c.needleStart, c.needleStart + 16)) === 'The pass key is ',
    ),
  );
  const passOne = await evaluateNiah(passkey, { checkpoint: shaped, ranks: 1 });
  const passFour = await evaluateNiah(passkey, { checkpoint: shaped, ranks: 4 });
  t.deepEqual(
    passFour.map((r) => r.answerCorrect),
    passOne.map((r) => r.answerCorrect),
  );
  t.log('passkey needle, right answer tokens:', passOne.map((r) => r.answerCorrect).join(' '));
});

/** float32 → IEEE binary16 bits, for normal values exactly representable in it. */
function toHalf(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const exponent = Math.floor(Math.log2(a));
  const mantissa = Math.round((a / 2 ** exponent - 1) * 1024);
  return sign | ((exponent + 15) << 10) | mantissa;
}
