// NIAH evaluation: the scoring rule on hand-built logits (TypeScript reference and the native
// chunked cross-entropy that applies it inside the model), the case grid, and evaluation of a
// checkpoint on the zigzag ring: the same results on 1 and 4 ranks.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { ByteTokenizer } from '../../data/tokenizer.js';
import { buildNiahCases, IGNORE_INDEX, NiahGridError } from '../../eval/niah-cases.js';
import { evaluateNiah } from '../../eval/niah-run.js';
import { answerFound, foundFromCounts, strictArgmax, summarize } from '../../eval/niah-score.js';
import '../../worker-native/kernels.js';
import { native } from '../../worker-native/native.js';
import { copyCorrect, writeCopyModel } from './fixtures.js';

const tok = new ByteTokenizer();

// Hand-built logits over a vocabulary of 5; the answer is [2, 4].
const RIGHT = [
  [0, 1, 3, 2, -1],
  [0.5, 0, 0, 0, 0.75],
];
const ONE_WRONG = [
  [0, 1, 3, 2, -1],
  [0.9, 0, 0, 0, 0.75], // token 0 beats the answer's 4
];
const TIE = [
  [0, 1, 3, 3, -1], // the answer's 2 ties with 3: not found
  [0.5, 0, 0, 0, 0.75],
];
const ANSWER = [2, 4];

test('scorer: found only when every answer token is the strict argmax; a tie is not found', (t) => {
  t.true(answerFound(RIGHT, ANSWER));
  t.false(answerFound(ONE_WRONG, ANSWER));
  t.false(answerFound(TIE, ANSWER));
  t.is(strictArgmax([1, 5, 2]), 1);
  t.is(strictArgmax([5, 1, 5]), -1, 'a tie for the maximum has no strict argmax');
  t.is(strictArgmax([1, 2, 2, 7]), 3, 'a tie below the maximum does not matter');
  t.is(strictArgmax([1, Number.NaN, 2]), -1);
  t.throws(() => answerFound([RIGHT[0]!], ANSWER), { message: '1 logit rows for 2 answer tokens' });
  t.true(foundFromCounts({ globalTokens: 2, globalArgmaxCorrect: 2 }, 2));
  t.false(foundFromCounts({ globalTokens: 2, globalArgmaxCorrect: 1 }, 2));
  t.throws(() => foundFromCounts({ globalTokens: 3, globalArgmaxCorrect: 3 }, 2), {
    message: 'the evaluation counted 3 labelled tokens, the answer has 2',
  });
});

test('native cross-entropy counts the same strict-argmax tokens as the reference (chunked and naive)', async (t) => {
  // With channels = vocab and an identity head, the logits are the hidden rows themselves.
  const V = 5;
  const rows = [...RIGHT, ...ONE_WRONG, ...TIE, [1, 1, 1, 1, 1]];
  const labels = Int32Array.from([...ANSWER, ...ANSWER, ...ANSWER, 0]);
  labels[2] = IGNORE_INDEX; // an ignored row is never counted, even a right one
  const hidden = Float32Array.from(rows.flat());
  const identity = Float32Array.from({ length: V * V }, (_, i) => (i % (V + 1) === 0 ? 1 : 0));
  const expected = rows.filter(
    (row, i) => labels[i] !== IGNORE_INDEX && strictArgmax(row) === labels[i],
  ).length;
  t.is(
    expected,
    3,
    'RIGHT: 2; ONE_WRONG: 0 (its right row is ignored); TIE: its second row; the all-equal row: 0',
  );
  for (const chunkTokens of [1, 3, 16]) {
    const dims = { tokens: rows.length, channels: V, vocab: V, chunkTokens };
    const chunked = await native().crossEntropy(dims, hidden, identity, labels, 0, null, null);
    t.is(chunked.argmaxCorrect, expected, `chunk ${chunkTokens}`);
    t.is(chunked.count, rows.length - 1);
  }
  const dims = { tokens: rows.length, channels: V, vocab: V };
  t.is(
    (await native().naiveCrossEntropy(dims, hidden, identity, labels, 0, null, null)).argmaxCorrect,
    expected,
  );
  t.is(
    (
      await native().naiveCrossEntropy(
        dims,
        Float64Array.from(hidden),
        Float64Array.from(identity),
        labels,
        0,
        null,
        null,
      )
    ).argmaxCorrect,
    expected,
  );
});

test('cases: exact lengths, the needle at its depth, labels only on the answer, deterministic keys', (t) => {
  const grid = {
    contextLengths: [256, 512],
    depths: [0, 0.5, 1],
    tokenizer: tok,
    haystack: { kind: 'generated' as const, seed: 1 },
    seed: 7,
  };
  const cases = buildNiahCases(grid);
  t.is(cases.length, 6);
  t.deepEqual(
    cases.map((c) => c.key),
    buildNiahCases(grid).map((c) => c.key),
  );
  t.is(new Set(cases.map((c) => c.key)).size, 6);
  for (const c of cases) {
    t.is(c.ids.length, c.contextLength);
    t.is(c.labels.length, c.contextLength);
    const text = tok.decode(c.ids);
    t.true(text.endsWith(`What is the pass key? The pass key is ${c.key}`), text.slice(-60));
    t.is(
      tok.decode(c.ids.subarray(c.needleStart, c.needleStart + 20)),
      `The pass key is ${c.key}.`.slice(0, 20),
    );
    t.is(c.answerTokens, 5);
    const labelled = [...c.labels.entries()].filter(([, l]) => l !== IGNORE_INDEX);
    t.deepEqual(
      labelled.map(([i]) => i),
      [0, 1, 2, 3, 4].map((k) => c.contextLength - 6 + k),
    );
    t.is(tok.decode(labelled.map(([, l]) => l)), c.key);
  }
  // Depth 0: right after BOS and the intro; depth 1: right before the question.
  const intro =
    1 +
    tok.encode(
      'There is an important piece of information hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about it.\n\n',
    ).length;
  t.is(cases[0]!.needleStart, intro);
  t.true(
    cases[1]!.needleStart > 0.4 * 256 && cases[1]!.needleStart < 0.6 * 256,
    String(cases[1]!.needleStart),
  );
  const last = cases[2]!;
  const needleLength = tok.encode(
    `The pass key is ${last.key}. Remember it. ${last.key} is the pass key. `,
  ).length;
  t.is(
    last.needleStart + needleLength,
    last.contextLength - tok.encode('\n\nWhat is the pass key? The pass key is ').length - 5,
  );

  // A token-file haystack: its tokens, the needle at the exact token offset.
  const hay = Uint32Array.from({ length: 1000 }, (_, i) => 97 + (i % 26));
  const [fromFile] = buildNiahCases({
    ...grid,
    contextLengths: [400],
    depths: [0.25],
    haystack: { kind: 'tokens', tokens: hay, source: 'x.bin' },
  });
  t.deepEqual(Array.from(fromFile!.ids.subarray(intro, intro + 5)), [97, 98, 99, 100, 101]);
});

test('bad grids are rejected naming the field and the reason', (t) => {
  const base = {
    contextLengths: [256],
    depths: [0.5],
    tokenizer: tok,
    haystack: { kind: 'generated' as const, seed: 1 },
    seed: 0,
  };
  t.throws(() => buildNiahCases({ ...base, contextLengths: [250], lengthMultiple: 8 }), {
    instanceOf: NiahGridError,
    message:
      'context lengths: 250 is not a multiple of 8 (2 × ranks: the zigzag ring cuts it in equal chunks)',
  });
  t.throws(() => buildNiahCases({ ...base, contextLengths: [64] }), {
    message: /context lengths: 64 is too short: intro, needle, question and answer take \d+ tokens/,
  });
  t.throws(() => buildNiahCases({ ...base, depths: [1.5] }), { message: 'depths: 1.5 is outside 0..1' });
  t.throws(() => buildNiahCases({ ...base, depths: [] }), { message: 'depths: give at least one' });
  t.throws(
    () =>
      buildNiahCases({ ...base, haystack: { kind: 'tokens', tokens: new Uint32Array(10), source: 'h.bin' } }),
    {
      message: /haystack h\.bin: has 10 tokens, a case of 256 tokens needs \d+/,
    },
  );
});

test('evaluation of a checkpoint: the copy model scores what it must, the same on 1 and 4 ranks', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'longctx-niah-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeCopyModel(dir, 0);
  const cases = buildNiahCases({
    contextLengths: [256, 512],
    depths: [0, 0.5, 1],
    tokenizer: tok,
    haystack: { kind: 'generated', seed: 2 },
    seed: 11,
    lengthMultiple: 8,
  });
  // Keys with repeated neighbouring digits, so some answer tokens are right and some wrong.
  const expected = cases.map(copyCorrect);
  t.log('answer tokens the copy model gets right, per case:', expected.join(' '));
  t.true(expected.some((n) => n > 0));
  const one = await evaluateNiah(cases, { checkpoint: dir, ranks: 1 });
  t.deepEqual(
    one.map((r) => r.answerCorrect),
    expected,
  );
  t.true(one.every((r) => !r.found && r.answerTokens === 5));
  const four = await evaluateNiah(cases, { checkpoint: dir, ranks: 4 });
  t.deepEqual(
    four.map((r) => r.answerCorrect),
    expected,
  );
  for (const [i, r] of four.entries())
    t.true(Math.abs(r.answerLoss - one[i]!.answerLoss) <= 1e-5 * one[i]!.answerLoss);

  const report = summarize([256, 512], [0, 0.5, 1], one);
  t.is(report.accuracy, 0);
  t.deepEqual(report.accuracyByLength, [0, 0]);
});

test('with attention shaping the logits, 1 and 4 ranks give the same scores and losses (within 1e-5)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'longctx-niah-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeCopyModel(dir, 0.15);
  const cases = buildNiahCases({
    contextLengths: [256, 512],
    depths: [0, 0.5, 1],
    tokenizer: tok,
    haystack: { kind: 'generated', seed: 3 },
    seed: 12,
    lengthMultiple: 8,
  });
  const one = await evaluateNiah(cases, { checkpoint: dir, ranks: 1, ropeTheta: 20000 });
  const four = await evaluateNiah(cases, { checkpoint: dir, ranks: 4, ropeTheta: 20000 });
  t.deepEqual(
    four.map((r) => [r.found, r.answerCorrect]),
    one.map((r) => [r.found, r.answerCorrect]),
  );
  t.log('right answer tokens per case:', one.map((r) => r.answerCorrect).join(' '));
  t.log('answer losses:', one.map((r) => r.answerLoss.toFixed(4)).join(' '));
  t.true(one.some((r) => r.answerCorrect > 0));
  for (const [i, r] of four.entries()) {
    t.true(
      Math.abs(r.answerLoss - one[i]!.answerLoss) <= 1e-5 * one[i]!.answerLoss,
      `${r.answerLoss} vs ${one[i]!.answerLoss}`,
    );
  }
});
