// AdamW with torch.optim.AdamW semantics, and the global gradient norm + clipping helpers.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import '../../worker-native/kernels.js';
import type { AdamWHyper } from '../../worker-native/kernels.js';
import { assertTwiceNaive, maxAbsError, pair, random } from './numeric.js';

const addon = native();

test('the first step moves each weight by lr against its gradient sign, after decoupled decay', async (t) => {
  // Step 1: m̂ = g and v̂ = g², so the update is lr · g / (|g| + eps).
  const hyper: AdamWHyper = { lr: 0.01, weightDecay: 0.1 };
  const params = Float32Array.from([1, -2, 0.5, 3]);
  const grads = Float32Array.from([0.3, -4, 1e-3, 0]);
  const m = new Float32Array(4);
  const v = new Float32Array(4);
  await addon.adamwUpdate(hyper, 1, params, grads, m, v);
  const want = [1, -2, 0.5, 3].map((p, i) => {
    const g = [0.3, -4, 1e-3, 0][i]!;
    return p * (1 - 0.01 * 0.1) - (0.01 * g) / (Math.abs(g) + 1e-8);
  });
  t.true(maxAbsError(params, want) < 1e-7, `${Array.from(params).join()} vs ${want.join()}`);
  const close = (got: Float32Array, want: number[]) =>
    got.every((x, i) => Math.abs(x - want[i]!) <= 1e-6 * Math.abs(want[i]!));
  t.true(close(m, [0.03, -0.4, 1e-4, 0]), `m = ${Array.from(m).join()}`);
  t.true(close(v, [0.09e-3, 16e-3, 1e-9, 0]), `v = ${Array.from(v).join()}`);
});

test('five steps match the textbook AdamW in float64', async (t) => {
  const rand = random(1);
  const n = 500;
  const hyper: AdamWHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01 };
  const fast = { p: pair(n, rand).f32, m: new Float32Array(n), v: new Float32Array(n) };
  const ref = { p: Float64Array.from(fast.p), m: new Float64Array(n), v: new Float64Array(n) };
  const naive = { p: Float32Array.from(fast.p), m: new Float32Array(n), v: new Float32Array(n) };
  for (let step = 1; step <= 5; step++) {
    const g = pair(n, rand, 0.1 * step);
    await addon.adamwUpdate(hyper, step, fast.p, g.f32, fast.m, fast.v);
    await addon.naiveAdamwUpdate(hyper, step, ref.p, g.f64, ref.m, ref.v);
    await addon.naiveAdamwUpdate(hyper, step, naive.p, g.f32, naive.m, naive.v);
  }
  assertTwiceNaive(t, 'm', fast.m, naive.m, ref.m);
  assertTwiceNaive(t, 'v', fast.v, naive.v, ref.v);
  // The parameters (|p| < 1) are stored in float32 after every step, so their error is a few
  // roundings of p itself (2^-24 each), whatever the update arithmetic: allow one per step.
  const storage = 5 * 2 ** -24;
  t.true(maxAbsError(fast.p, ref.p) <= storage, `${maxAbsError(fast.p, ref.p)}`);
  t.true(maxAbsError(naive.p, ref.p) <= storage);
});

test('bad hyperparameters and step 0 reject naming them', async (t) => {
  const a = new Float32Array(2);
  await t.throwsAsync(addon.adamwUpdate({ lr: 1e-3, beta1: 1 }, 1, a, a, a, a), {
    message: 'AdamW beta1 must be in [0, 1), got 1',
  });
  await t.throwsAsync(addon.adamwUpdate({ lr: 1e-3 }, 0, a, a, a, a), {
    message: 'AdamW step must be at least 1 (steps count from 1), got 0',
  });
  await t.throwsAsync(addon.adamwUpdate({ lr: 1e-3 }, 1, a, a, a, new Float32Array(3)), {
    message: 'v has 3 elements, expected the length of the first array = 2',
  });
});

test('the gradient norm sums squares in double; clipping scales by max/(norm + 1e-6) only above max', async (t) => {
  // 2^24 + 1 ones: a float32 running sum stalls at 2^24, a double one does not.
  const x = new Float32Array((1 << 24) + 1).fill(1);
  t.is(await addon.sumOfSquares(x), (1 << 24) + 1);
  const g = Float32Array.from([3, 4]);
  const norm = Math.sqrt(await addon.sumOfSquares(g));
  t.is(norm, 5);
  const coef = addon.clipCoefficient(norm, 1);
  t.is(coef, 1 / (5 + 1e-6));
  await addon.scaleInPlace(g, coef);
  t.true(Math.abs(Math.hypot(g[0]!, g[1]!) - 1) < 1e-6);
  t.is(addon.clipCoefficient(0.5, 1), 1);
  t.is(addon.clipCoefficient(100, 0), 1);
});
