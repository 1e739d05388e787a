// Rotary embeddings: HF rotate_half convention, explicit (non-contiguous) positions, angles in
// double so that rope_theta = 1e9 at positions near 224K stays accurate.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import '../../worker-native/kernels.js';
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

/** The positions of rank 1 of 4 in a zigzag split of 224K tokens, 8 from each of its chunks. */
function zigzagPositions(): Int32Array {
  const chunk = (224 * 1024) / 8;
  const starts = [1 * chunk, 6 * chunk];
  return Int32Array.from({ length: 16 }, (_, i) => starts[i >> 3]! + (i & 7) * 977);
}

test('rotate_half: the first half pairs with the second half of each head', async (t) => {
  const dims = { tokens: 1, heads: 1, headDim: 4, theta: 10000 };
  const x = Float32Array.from([1, 2, 3, 4]);
  await addon.ropeForward(dims, Int32Array.from([1]), x);
  // inv_freq = [1, 10000^(-1/2)] = [1, 0.01]; angle = position · inv_freq.
  const [c0, s0, c1, s1] = [Math.cos(1), Math.sin(1), Math.cos(0.01), Math.sin(0.01)];
  const want = [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1];
  t.true(maxAbsError(x, want) < 1e-6, `${Array.from(x).join()} vs ${want.join()}`);
});

test('forward matches the float64 reference at theta 1e9 and zigzag positions near 224K', async (t) => {
  const positions = zigzagPositions();
  const dims = { tokens: positions.length, heads: 3, headDim: 64, theta: 1e9 };
  const x = pair(dims.tokens * dims.heads * dims.headDim, random(1));
  const fast = Float32Array.from(x.f32);
  await addon.ropeForward(dims, positions, fast);
  const ref = new Float64Array(x.f64.length);
  const naive = new Float32Array(x.f32.length);
  await addon.naiveRope(dims, positions, x.f64, ref, false);
  await addon.naiveRope(dims, positions, x.f32, naive, false);
  assertTwiceNaive(t, 'rope', fast, naive, ref);
  t.true(maxAbsError(fast, ref) < 1e-6);

  // Why the angles are computed in double: the same rotation with float32 angles is visibly off.
  const cos = new Float32Array(dims.tokens * 32);
  const sin = new Float32Array(cos.length);
  await addon.ropeTables(dims, positions, cos, sin);
  let worstFloatAngle = 0;
  for (let i = 0; i < 32; i++) {
    const invFreq = Math.fround(1 / Math.fround(Math.pow(dims.theta, (2 * i) / 64)));
    const angle64 = positions[15]! * Math.pow(dims.theta, (-2 * i) / 64);
    const angle32 = Math.fround(positions[15]! * invFreq);
    worstFloatAngle = Math.max(worstFloatAngle, Math.abs(Math.cos(angle32) - Math.cos(angle64)));
    t.true(Math.abs(cos[15 * 32 + i]! - Math.cos(angle64)) < 1e-7);
  }
  t.true(worstFloatAngle > 1e-3, `float32 angles were accurate to ${worstFloatAngle}`);
});

test('backward is the inverse rotation, and the reference backward matches finite differences', async (t) => {
  const positions = zigzagPositions();
  const dims = { tokens: positions.length, heads: 2, headDim: 8, theta: 1e6 };
  const rand = random(2);
  const x = pair(dims.tokens * dims.heads * dims.headDim, rand);
  const dout = pair(x.f64.length, rand);

  // Inverse: rotating forward then backward returns the input.
  const roundTrip = Float32Array.from(x.f32);
  await addon.ropeForward(dims, positions, roundTrip);
  await addon.ropeBackward(dims, positions, roundTrip);
  t.true(maxAbsError(roundTrip, x.f32) < 1e-6);

  const fast = Float32Array.from(dout.f32);
  await addon.ropeBackward(dims, positions, fast);
  const ref = new Float64Array(x.f64.length);
  const naive = new Float32Array(x.f32.length);
  await addon.naiveRope(dims, positions, dout.f64, ref, true);
  await addon.naiveRope(dims, positions, dout.f32, naive, true);
  assertTwiceNaive(t, 'drope', fast, naive, ref);

  const y = new Float64Array(x.f64.length);
  const loss = async (xs: Float64Array) => {
    await addon.naiveRope(dims, positions, xs, y, false);
    return dot(y, dout.f64);
  };
  await assertMatchesFiniteDifference(t, 'dx', loss, x.f64, ref, sampleIndices(x.f64.length, 48, rand, ref), {
    h: 1e-5,
    atol: 1e-9,
    rtol: 1e-7,
  });
});

test('odd head_dim, bad theta and negative positions reject with a message', async (t) => {
  const x = new Float32Array(6);
  await t.throwsAsync(
    addon.ropeForward({ tokens: 1, heads: 2, headDim: 3, theta: 1e4 }, Int32Array.from([0]), x),
    {
      message: 'rope head_dim must be positive and even, got 3',
    },
  );
  await t.throwsAsync(
    addon.ropeForward({ tokens: 1, heads: 3, headDim: 2, theta: 0 }, Int32Array.from([0]), x),
    {
      message: /rope_theta must be a positive finite number/,
    },
  );
  await t.throwsAsync(
    addon.ropeForward({ tokens: 3, heads: 1, headDim: 2, theta: 1e4 }, Int32Array.from([0, -5, 2]), x),
    { message: 'positions[1] = -5 is negative' },
  );
});
