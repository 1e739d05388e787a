// The chunked LM head + cross-entropy against the full-logits reference, with ignored labels.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import '../../worker-native/kernels.js';
import type { CrossEntropyDims } from '../../worker-native/kernels.js';
import {
  assertMatchesFiniteDifference,
  assertTwiceNaive,
  maxAbs,
  pair,
  random,
  randomInts,
  sampleIndices,
} from './numeric.js';

const addon = native();
addon.setBlasThreads(1);

const IGNORE = -100;
const base = { tokens: 23, channels: 16, vocab: 50 };

function inputs(seed: number) {
  const rand = random(seed);
  const labels = randomInts(base.tokens, rand, base.vocab);
  for (const i of [0, 7, 8, 22]) labels[i] = IGNORE;
  return {
    hidden: pair(base.tokens * base.channels, rand, 1.5),
    weight: pair(base.vocab * base.channels, rand, 0.8),
    labels,
  };
}

/** Cross-entropy of one row of logits computed here in JavaScript, as an independent check. */
function rowLoss(hidden: Float64Array, weight: Float64Array, t: number, label: number): number {
  const logits = Array.from({ length: base.vocab }, (_, v) => {
    let s = 0;
    for (let c = 0; c < base.channels; c++)
      s += hidden[t * base.channels + c]! * weight[v * base.channels + c]!;
    return s;
  });
  const max = Math.max(...logits);
  const lse = max + Math.log(logits.reduce((acc, l) => acc + Math.exp(l - max), 0));
  return lse - logits[label]!;
}

for (const chunkTokens of [1, 5, 23, 64]) {
  test(`chunks of ${chunkTokens} tokens give the full-logits loss and gradients`, async (t) => {
    const { hidden, weight, labels } = inputs(1);
    const dims: CrossEntropyDims = { ...base, chunkTokens };
    const scale = 1 / 19;
    const got = { dh: new Float32Array(hidden.f32.length), dw: new Float32Array(weight.f32.length) };
    const result = await addon.crossEntropy(dims, hidden.f32, weight.f32, labels, scale, got.dh, got.dw);
    const ref = { dh: new Float64Array(hidden.f64.length), dw: new Float64Array(weight.f64.length) };
    const want = await addon.naiveCrossEntropy(dims, hidden.f64, weight.f64, labels, scale, ref.dh, ref.dw);
    const naive = { dh: new Float32Array(hidden.f32.length), dw: new Float32Array(weight.f32.length) };
    const naive32 = await addon.naiveCrossEntropy(
      dims,
      hidden.f32,
      weight.f32,
      labels,
      scale,
      naive.dh,
      naive.dw,
    );

    t.is(result.count, 19);
    t.is(want.count, 19);
    const lossError = Math.abs(result.lossSum - want.lossSum);
    t.true(
      lossError <= Math.max(2 * Math.abs(naive32.lossSum - want.lossSum), 1e-6 * want.lossSum),
      `${lossError}`,
    );
    assertTwiceNaive(t, 'dhidden', got.dh, naive.dh, ref.dh);
    assertTwiceNaive(t, 'dweight', got.dw, naive.dw, ref.dw);
    // Ignored tokens get no gradient.
    for (const i of [0, 7, 8, 22]) t.is(maxAbs(got.dh.subarray(i * 16, i * 16 + 16)), 0);
  });
}

test('the reference loss is the JavaScript cross-entropy and its gradients match finite differences', async (t) => {
  const { hidden, weight, labels } = inputs(2);
  const dims: CrossEntropyDims = base;
  const ref = { dh: new Float64Array(hidden.f64.length), dw: new Float64Array(weight.f64.length) };
  const want = await addon.naiveCrossEntropy(dims, hidden.f64, weight.f64, labels, 1, ref.dh, ref.dw);
  let sum = 0;
  labels.forEach((label, i) => {
    if (label !== IGNORE) sum += rowLoss(hidden.f64, weight.f64, i, label);
  });
  t.true(Math.abs(want.lossSum - sum) < 1e-10 * sum);

  const lossOf = (h: Float64Array, w: Float64Array) => async () =>
    (await addon.naiveCrossEntropy(dims, h, w, labels, 1, null, null)).lossSum;
  const rand = random(3);
  const tol = { h: 1e-5, atol: 1e-8, rtol: 1e-6 };
  await assertMatchesFiniteDifference(
    t,
    'dhidden',
    (h) => lossOf(h, weight.f64)(),
    hidden.f64,
    ref.dh,
    sampleIndices(hidden.f64.length, 40, rand, ref.dh),
    tol,
  );
  await assertMatchesFiniteDifference(
    t,
    'dweight',
    (w) => lossOf(hidden.f64, w)(),
    weight.f64,
    ref.dw,
    sampleIndices(weight.f64.length, 40, rand, ref.dw),
    tol,
  );
});

test('the gradients add into dhidden and dweight; without them only the loss is computed', async (t) => {
  const { hidden, weight, labels } = inputs(3);
  const dims: CrossEntropyDims = { ...base, chunkTokens: 4 };
  const dh = new Float32Array(hidden.f32.length).fill(1);
  const lossOnly = await addon.crossEntropy(dims, hidden.f32, weight.f32, labels, 1, null, null);
  const withGrad = await addon.crossEntropy(dims, hidden.f32, weight.f32, labels, 1, dh, null);
  t.is(lossOnly.lossSum, withGrad.lossSum);
  const fresh = new Float32Array(hidden.f32.length);
  await addon.crossEntropy(dims, hidden.f32, weight.f32, labels, 1, fresh, null);
  t.true(dh.every((v, i) => Math.abs(v - 1 - fresh[i]!) < 1e-6));
});

test('all labels ignored: zero loss, zero count, zero gradients', async (t) => {
  const { hidden, weight } = inputs(4);
  const labels = new Int32Array(base.tokens).fill(IGNORE);
  const dh = new Float32Array(hidden.f32.length);
  const dw = new Float32Array(weight.f32.length);
  const r = await addon.crossEntropy({ ...base, chunkTokens: 8 }, hidden.f32, weight.f32, labels, 1, dh, dw);
  t.deepEqual(r, { lossSum: 0, count: 0, argmaxCorrect: 0 });
  t.is(maxAbs(dh) + maxAbs(dw), 0);
});

test('a label outside the vocabulary that is not -100 rejects naming it', async (t) => {
  const { hidden, weight, labels } = inputs(5);
  labels[3] = 50;
  await t.throwsAsync(
    addon.crossEntropy({ ...base, chunkTokens: 8 }, hidden.f32, weight.f32, labels, 1, null, null),
    {
      message: 'labels[3] = 50 is outside the vocabulary [0, 50) and is not the ignore index -100',
    },
  );
  await t.throwsAsync(addon.crossEntropy(base, hidden.f32, weight.f32, labels.fill(1), 1, null, null), {
    message: 'dims.chunkTokens must be positive, got 0',
  });
});
