// Linear layers through cblas_sgemm (torch.nn.Linear layout) against the triple-loop reference.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import '../../worker-native/kernels.js';
import type { LinearDims } from '../../worker-native/kernels.js';
import {
  assertMatchesFiniteDifference,
  assertTwiceNaive,
  dot,
  maxAbs,
  maxAbsError,
  pair,
  random,
  sampleIndices,
} from './numeric.js';

const addon = native();
addon.setBlasThreads(1);

const dims: LinearDims = { tokens: 13, inFeatures: 40, outFeatures: 24 };

function inputs(seed: number) {
  const rand = random(seed);
  return {
    x: pair(dims.tokens * dims.inFeatures, rand),
    w: pair(dims.outFeatures * dims.inFeatures, rand, 0.3),
    b: pair(dims.outFeatures, rand),
    dout: pair(dims.tokens * dims.outFeatures, rand),
  };
}

for (const withBias of [true, false]) {
  test(`forward ${withBias ? 'with' : 'without'} bias matches the reference`, async (t) => {
    const { x, w, b } = inputs(withBias ? 1 : 2);
    const out = new Float32Array(dims.tokens * dims.outFeatures);
    const ref = new Float64Array(out.length);
    const naive = new Float32Array(out.length);
    await addon.linearForward(dims, x.f32, w.f32, withBias ? b.f32 : null, out);
    await addon.naiveLinearForward(dims, x.f64, w.f64, withBias ? b.f64 : null, ref);
    await addon.naiveLinearForward(dims, x.f32, w.f32, withBias ? b.f32 : null, naive);
    assertTwiceNaive(t, 'out', out, naive, ref);
    // out[2][5] by hand: row 2 of x against row 5 of the weight.
    const want = dot(x.f64.subarray(80, 120), w.f64.subarray(200, 240)) + (withBias ? b.f64[5]! : 0);
    t.true(Math.abs(out[2 * 24 + 5]! - want) < 1e-5);
  });
}

test('backward (dx, dweight, dbias) matches the reference, which matches finite differences', async (t) => {
  const { x, w, b, dout } = inputs(3);
  const got = {
    dx: new Float32Array(x.f32.length),
    dw: new Float32Array(w.f32.length),
    db: new Float32Array(b.f32.length),
  };
  await addon.linearBackward(dims, x.f32, w.f32, dout.f32, got.dx, got.dw, got.db);
  const ref = {
    dx: new Float64Array(x.f64.length),
    dw: new Float64Array(w.f64.length),
    db: new Float64Array(b.f64.length),
  };
  const naive = {
    dx: new Float32Array(x.f32.length),
    dw: new Float32Array(w.f32.length),
    db: new Float32Array(b.f32.length),
  };
  await addon.naiveLinearBackward(dims, x.f64, w.f64, dout.f64, ref.dx, ref.dw, ref.db);
  await addon.naiveLinearBackward(dims, x.f32, w.f32, dout.f32, naive.dx, naive.dw, naive.db);
  assertTwiceNaive(t, 'dx', got.dx, naive.dx, ref.dx);
  assertTwiceNaive(t, 'dweight', got.dw, naive.dw, ref.dw);
  assertTwiceNaive(t, 'dbias', got.db, naive.db, ref.db);

  const y = new Float64Array(dout.f64.length);
  const loss = (xs: Float64Array, ws: Float64Array, bs: Float64Array) => async () => {
    await addon.naiveLinearForward(dims, xs, ws, bs, y);
    return dot(y, dout.f64);
  };
  const rand = random(4);
  const tol = { h: 1e-4, atol: 1e-8, rtol: 1e-7 };
  await assertMatchesFiniteDifference(
    t,
    'dx',
    (v) => loss(v, w.f64, b.f64)(),
    x.f64,
    ref.dx,
    sampleIndices(x.f64.length, 30, rand, ref.dx),
    tol,
  );
  await assertMatchesFiniteDifference(
    t,
    'dweight',
    (v) => loss(x.f64, v, b.f64)(),
    w.f64,
    ref.dw,
    sampleIndices(w.f64.length, 30, rand, ref.dw),
    tol,
  );
  await assertMatchesFiniteDifference(
    t,
    'dbias',
    (v) => loss(x.f64, w.f64, v)(),
    b.f64,
    ref.db,
    sampleIndices(b.f64.length, 24, rand),
    tol,
  );
});

test('backward adds into its outputs and skips the ones given as null', async (t) => {
  const { x, w, dout } = inputs(5);
  const once = new Float32Array(w.f32.length);
  await addon.linearBackward(dims, x.f32, w.f32, dout.f32, null, once, null);
  const twice = Float32Array.from(once);
  await addon.linearBackward(dims, x.f32, w.f32, dout.f32, null, twice, null);
  t.true(
    maxAbsError(
      twice,
      once.map((v) => 2 * v),
    ) <=
      1e-6 * maxAbs(once),
  );
  t.true(maxAbs(once) > 0);
});

test('a weight of the wrong size rejects naming it', async (t) => {
  const { x, b } = inputs(6);
  await t.throwsAsync(
    addon.linearForward(
      dims,
      x.f32,
      new Float32Array(5),
      b.f32,
      new Float32Array(dims.tokens * dims.outFeatures),
    ),
    { message: 'weight has 5 elements, expected outFeatures·inFeatures = 960' },
  );
});
