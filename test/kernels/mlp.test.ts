// The SwiGLU MLP (down(silu(gate(x)) ⊙ up(x))), its elementwise SwiGLU, and the residual add.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import '../../worker-native/kernels.js';
import type { MlpDims } from '../../worker-native/kernels.js';
import {
  assertMatchesFiniteDifference,
  assertTwiceNaive,
  dot,
  maxAbsError,
  pair,
  random,
  sampleIndices,
} from './numeric.js';

const addon = native();
addon.setBlasThreads(1);

const silu = (g: number) => g / (1 + Math.exp(-g));

test('swiglu forward is silu(gate)·up, and its backward matches the reference and finite differences', async (t) => {
  const rand = random(1);
  const n = 257;
  const gate = pair(n, rand, 6);
  const up = pair(n, rand, 2);
  const dact = pair(n, rand);
  const act = new Float32Array(n);
  await addon.swigluForward(gate.f32, up.f32, act);
  t.true(
    maxAbsError(
      act,
      Array.from(gate.f64, (g, i) => silu(g) * up.f64[i]!),
    ) < 1e-5,
  );

  const got = { dgate: new Float32Array(n), dup: new Float32Array(n) };
  await addon.swigluBackward(gate.f32, up.f32, dact.f32, got.dgate, got.dup);
  const ref = { dgate: new Float64Array(n), dup: new Float64Array(n) };
  const naive = { dgate: new Float32Array(n), dup: new Float32Array(n) };
  await addon.naiveSwigluBackward(gate.f64, up.f64, dact.f64, ref.dgate, ref.dup);
  await addon.naiveSwigluBackward(gate.f32, up.f32, dact.f32, naive.dgate, naive.dup);
  assertTwiceNaive(t, 'dgate', got.dgate, naive.dgate, ref.dgate);
  assertTwiceNaive(t, 'dup', got.dup, naive.dup, ref.dup);

  const y = new Float64Array(n);
  const loss = (g: Float64Array, u: Float64Array) => async () => {
    await addon.naiveSwigluForward(g, u, y);
    return dot(y, dact.f64);
  };
  const tol = { h: 1e-5, atol: 1e-9, rtol: 1e-7 };
  const all = sampleIndices(n, n, rand);
  await assertMatchesFiniteDifference(t, 'dgate', (g) => loss(g, up.f64)(), gate.f64, ref.dgate, all, tol);
  await assertMatchesFiniteDifference(t, 'dup', (u) => loss(gate.f64, u)(), up.f64, ref.dup, all, tol);
});

const dims: MlpDims = { tokens: 11, channels: 32, intermediate: 48 };

function mlpInputs(seed: number) {
  const rand = random(seed);
  return {
    x: pair(dims.tokens * dims.channels, rand),
    wg: pair(dims.intermediate * dims.channels, rand, 0.4),
    wu: pair(dims.intermediate * dims.channels, rand, 0.4),
    wd: pair(dims.channels * dims.intermediate, rand, 0.3),
    dout: pair(dims.tokens * dims.channels, rand),
  };
}

test('MLP forward matches the reference', async (t) => {
  const { x, wg, wu, wd } = mlpInputs(2);
  const out = new Float32Array(x.f32.length);
  const ref = new Float64Array(x.f64.length);
  const naive = new Float32Array(x.f32.length);
  await addon.mlpForward(dims, x.f32, wg.f32, wu.f32, wd.f32, out);
  await addon.naiveMlpForward(dims, x.f64, wg.f64, wu.f64, wd.f64, ref);
  await addon.naiveMlpForward(dims, x.f32, wg.f32, wu.f32, wd.f32, naive);
  assertTwiceNaive(t, 'out', out, naive, ref);
});

test('MLP backward matches the reference, which matches finite differences', async (t) => {
  const { x, wg, wu, wd, dout } = mlpInputs(3);
  const zeros32 = (n: number) => new Float32Array(n);
  const zeros64 = (n: number) => new Float64Array(n);
  const got = {
    dx: zeros32(x.f32.length),
    dwg: zeros32(wg.f32.length),
    dwu: zeros32(wu.f32.length),
    dwd: zeros32(wd.f32.length),
  };
  const ref = {
    dx: zeros64(x.f64.length),
    dwg: zeros64(wg.f64.length),
    dwu: zeros64(wu.f64.length),
    dwd: zeros64(wd.f64.length),
  };
  const naive = {
    dx: zeros32(x.f32.length),
    dwg: zeros32(wg.f32.length),
    dwu: zeros32(wu.f32.length),
    dwd: zeros32(wd.f32.length),
  };
  await addon.mlpBackward(dims, x.f32, wg.f32, wu.f32, wd.f32, dout.f32, got.dx, got.dwg, got.dwu, got.dwd);
  await addon.naiveMlpBackward(
    dims,
    x.f64,
    wg.f64,
    wu.f64,
    wd.f64,
    dout.f64,
    ref.dx,
    ref.dwg,
    ref.dwu,
    ref.dwd,
  );
  await addon.naiveMlpBackward(
    dims,
    x.f32,
    wg.f32,
    wu.f32,
    wd.f32,
    dout.f32,
    naive.dx,
    naive.dwg,
    naive.dwu,
    naive.dwd,
  );
  for (const key of ['dx', 'dwg', 'dwu', 'dwd'] as const)
    assertTwiceNaive(t, key, got[key], naive[key], ref[key]);

  const y = new Float64Array(x.f64.length);
  const weights = { x: x.f64, wg: wg.f64, wu: wu.f64, wd: wd.f64 };
  const loss = async () => {
    await addon.naiveMlpForward(dims, weights.x, weights.wg, weights.wu, weights.wd, y);
    return dot(y, dout.f64);
  };
  const rand = random(4);
  const tol = { h: 1e-5, atol: 1e-8, rtol: 1e-6 };
  const pairs = [
    ['dx', weights.x, ref.dx],
    ['dwGate', weights.wg, ref.dwg],
    ['dwUp', weights.wu, ref.dwu],
    ['dwDown', weights.wd, ref.dwd],
  ] as const;
  for (const [label, tensor, grad] of pairs) {
    await assertMatchesFiniteDifference(
      t,
      label,
      loss,
      tensor,
      grad,
      sampleIndices(tensor.length, 25, rand, grad),
      tol,
    );
  }
});

test('residual forward adds; addInPlace accumulates', async (t) => {
  const rand = random(5);
  const a = pair(100, rand);
  const b = pair(100, rand);
  const out = new Float32Array(100);
  await addon.residualForward(a.f32, b.f32, out);
  const ref = new Float64Array(100);
  await addon.naiveResidualForward(a.f64, b.f64, ref);
  t.true(maxAbsError(out, ref) <= 1e-7 * 2);
  t.deepEqual(
    out,
    a.f32.map((v, i) => v + b.f32[i]!),
  );
  const acc = Float32Array.from(a.f32);
  await addon.addInPlace(acc, b.f32);
  t.deepEqual(acc, out);
  await t.throwsAsync(addon.residualForward(a.f32, b.f32.subarray(1), out), {
    message: 'b has 99 elements, expected the length of the first array = 100',
  });
});
