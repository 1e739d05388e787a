// RMSNorm (Hugging Face Qwen2RMSNorm): out = weight ⊙ x / sqrt(mean(x²) + eps).
import test from 'ava';

import { native } from '../../worker-native/native.js';
import '../../worker-native/kernels.js';
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

const dims = { tokens: 9, channels: 96, eps: 1e-6 };

function inputs(seed: number) {
  const rand = random(seed);
  return {
    x: pair(dims.tokens * dims.channels, rand, 2),
    weight: pair(dims.channels, rand, 0.5, 1),
    dout: pair(dims.tokens * dims.channels, rand),
  };
}

test('forward matches the HF formula and the float64 reference', async (t) => {
  const { x, weight } = inputs(1);
  const out = new Float32Array(x.f32.length);
  const rstd = new Float32Array(dims.tokens);
  await addon.rmsnormForward(dims, x.f32, weight.f32, out, rstd);
  const ref = new Float64Array(x.f64.length);
  const naive = new Float32Array(x.f32.length);
  await addon.naiveRmsnormForward(dims, x.f64, weight.f64, ref);
  await addon.naiveRmsnormForward(dims, x.f32, weight.f32, naive);
  assertTwiceNaive(t, 'out', out, naive, ref);
  // Row 2 by hand.
  const row = x.f64.subarray(2 * dims.channels, 3 * dims.channels);
  const r = 1 / Math.sqrt(dot(row, row) / dims.channels + dims.eps);
  t.true(Math.abs(rstd[2]! - r) <= 1e-6 * r);
  t.true(Math.abs(out[2 * dims.channels + 5]! - weight.f64[5]! * row[5]! * r) < 1e-5);
});

test('backward matches the float64 reference, which matches finite differences', async (t) => {
  const { x, weight, dout } = inputs(2);
  const out = new Float32Array(x.f32.length);
  const rstd = new Float32Array(dims.tokens);
  await addon.rmsnormForward(dims, x.f32, weight.f32, out, rstd);
  const dx = new Float32Array(x.f32.length);
  const dw = new Float32Array(dims.channels);
  await addon.rmsnormBackward(dims, x.f32, weight.f32, rstd, dout.f32, dx, dw);

  const ref = { dx: new Float64Array(x.f64.length), dw: new Float64Array(dims.channels) };
  const naive = { dx: new Float32Array(x.f32.length), dw: new Float32Array(dims.channels) };
  await addon.naiveRmsnormBackward(dims, x.f64, weight.f64, dout.f64, ref.dx, ref.dw);
  await addon.naiveRmsnormBackward(dims, x.f32, weight.f32, dout.f32, naive.dx, naive.dw);
  assertTwiceNaive(t, 'dx', dx, naive.dx, ref.dx);
  assertTwiceNaive(t, 'dweight', dw, naive.dw, ref.dw);

  const y = new Float64Array(x.f64.length);
  const loss = (xs: Float64Array, ws: Float64Array) => async () => {
    await addon.naiveRmsnormForward(dims, xs, ws, y);
    return dot(y, dout.f64);
  };
  const rand = random(3);
  const tol = { h: 1e-5, atol: 1e-8, rtol: 1e-6 };
  await assertMatchesFiniteDifference(
    t,
    'dx',
    (xs) => loss(xs, weight.f64)(),
    x.f64,
    ref.dx,
    sampleIndices(x.f64.length, 40, rand, ref.dx),
    tol,
  );
  await assertMatchesFiniteDifference(
    t,
    'dweight',
    (ws) => loss(x.f64, ws)(),
    weight.f64,
    ref.dw,
    sampleIndices(dims.channels, dims.channels, rand),
    tol,
  );
});

test('backward adds into dx and dweight', async (t) => {
  const { x, weight, dout } = inputs(4);
  const out = new Float32Array(x.f32.length);
  const rstd = new Float32Array(dims.tokens);
  await addon.rmsnormForward(dims, x.f32, weight.f32, out, rstd);
  const once = { dx: new Float32Array(x.f32.length), dw: new Float32Array(dims.channels) };
  await addon.rmsnormBackward(dims, x.f32, weight.f32, rstd, dout.f32, once.dx, once.dw);
  const twice = { dx: Float32Array.from(once.dx), dw: Float32Array.from(once.dw) };
  await addon.rmsnormBackward(dims, x.f32, weight.f32, rstd, dout.f32, twice.dx, twice.dw);
  // Not bitwise: the add is fused (FMA) with the last product.
  t.true(
    maxAbsError(
      twice.dx,
      once.dx.map((v) => 2 * v),
    ) <=
      1e-6 * maxAbs(once.dx),
  );
  t.true(
    maxAbsError(
      twice.dw,
      once.dw.map((v) => 2 * v),
    ) <=
      1e-6 * maxAbs(once.dw),
  );
});

test('bad sizes and eps reject with a message', async (t) => {
  const f = new Float32Array(dims.tokens * dims.channels);
  await t.throwsAsync(addon.rmsnormForward(dims, f, new Float32Array(3), f, new Float32Array(dims.tokens)), {
    message: 'weight has 3 elements, expected channels = 96',
  });
  await t.throwsAsync(
    addon.rmsnormForward({ ...dims, eps: 0 }, f, new Float32Array(96), f, new Float32Array(dims.tokens)),
    { message: /dims.eps must be positive/ },
  );
});
