// Token embedding: a row gather forward, a scatter-add backward (repeated tokens accumulate).
import test from 'ava';

import { native } from '../../worker-native/native.js';
import '../../worker-native/kernels.js';
import { assertMatchesFiniteDifference, dot, maxAbsError, pair, random, randomInts } from './numeric.js';

const addon = native();
addon.setBlasThreads(1);

const dims = { tokens: 12, channels: 8, vocab: 10 };

test('forward gathers the rows of the ids, exactly as the reference', async (t) => {
  const rand = random(1);
  const ids = randomInts(dims.tokens, rand, dims.vocab);
  const weight = pair(dims.vocab * dims.channels, rand);
  const out = new Float32Array(dims.tokens * dims.channels);
  const ref = new Float64Array(out.length);
  await addon.embeddingForward(dims, ids, weight.f32, out);
  await addon.naiveEmbeddingForward(dims, ids, weight.f64, ref);
  t.is(maxAbsError(out, ref), 0);
  t.deepEqual(Array.from(out.subarray(8, 16)), Array.from(weight.f32.subarray(ids[1]! * 8, ids[1]! * 8 + 8)));
});

test('backward scatter-adds (repeated ids accumulate) and matches the reference and finite differences', async (t) => {
  const rand = random(2);
  const ids = Int32Array.from([3, 1, 3, 3, 0, 9, 1, 2, 3, 5, 5, 7]);
  const weight = pair(dims.vocab * dims.channels, rand);
  const dout = pair(dims.tokens * dims.channels, rand);
  const dweight = new Float32Array(weight.f32.length);
  await addon.embeddingBackward(dims, ids, dout.f32, dweight);
  const ref = new Float64Array(weight.f64.length);
  await addon.naiveEmbeddingBackward(dims, ids, dout.f64, ref);
  t.true(maxAbsError(dweight, ref) < 1e-6);
  // Adds: a second backward doubles the gradient.
  await addon.embeddingBackward(dims, ids, dout.f32, dweight);
  t.true(
    maxAbsError(
      dweight,
      Float64Array.from(ref, (x) => 2 * x),
    ) < 1e-6,
  );

  // L = Σ dout ⊙ embedding(weight), so dL/dweight is the reference backward.
  const out = new Float64Array(dout.f64.length);
  const loss = async (w: Float64Array) => {
    await addon.naiveEmbeddingForward(dims, ids, w, out);
    return dot(out, dout.f64);
  };
  const all = Array.from({ length: weight.f64.length }, (_, i) => i);
  await assertMatchesFiniteDifference(t, 'dweight', loss, weight.f64, ref, all, {
    h: 1e-3,
    atol: 1e-9,
    rtol: 1e-9,
  });
});

test('an id outside the vocabulary rejects with its index and value', async (t) => {
  const ids = new Int32Array(dims.tokens).fill(1);
  ids[4] = 10;
  const error = await t.throwsAsync(
    addon.embeddingForward(dims, ids, new Float32Array(80), new Float32Array(dims.tokens * dims.channels)),
  );
  t.is(error?.message, 'ids[4] = 10 is outside the vocabulary [0, 10)');
  await t.throwsAsync(
    addon.embeddingForward(dims, ids.subarray(1), new Float32Array(80), new Float32Array(96)),
    {
      message: 'ids has 11 elements, expected tokens = 12',
    },
  );
});
