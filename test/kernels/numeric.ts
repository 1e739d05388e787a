// Numerical helpers shared by the kernel and model tests: seeded inputs, error measures, the
// accuracy rule for fast kernels, and central finite differences.
import type { ExecutionContext } from 'ava';

/** Deterministic uniform numbers in [-1, 1) (mulberry32). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2147483648 - 1;
  };
}

/** A float32 tensor and its exact float64 copy. */
export interface Pair {
  f32: Float32Array;
  f64: Float64Array;
}

export function pair(length: number, rand: () => number, amplitude = 1, center = 0): Pair {
  const f32 = new Float32Array(length);
  for (let i = 0; i < length; i++) f32[i] = center + amplitude * rand();
  return { f32, f64: Float64Array.from(f32) };
}

export function randomInts(length: number, rand: () => number, below: number): Int32Array {
  return Int32Array.from({ length }, () => Math.floor(((rand() + 1) / 2) * below));
}

export function maxAbs(x: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]!));
  return worst;
}

export function maxAbsError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} != ${want.length}`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  return worst;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

/** Below this, a naive float32 error of 0 (exact) is replaced as the bound. */
export const ZERO_ERROR_FLOOR = 1e-6;

/**
 * The accuracy rule for a fast float32 kernel (as in the attention tests and FlashAttention's):
 * its max abs error against the float64 reference must be at most twice the error of the naive
 * float32 reference on the same inputs, or ZERO_ERROR_FLOOR where the naive error is 0.
 */
export function assertTwiceNaive(
  t: ExecutionContext,
  label: string,
  fast: ArrayLike<number>,
  naive32: ArrayLike<number>,
  ref64: ArrayLike<number>,
): void {
  const fastError = maxAbsError(fast, ref64);
  const naiveError = maxAbsError(naive32, ref64);
  const bound = naiveError === 0 ? ZERO_ERROR_FLOOR : 2 * naiveError;
  t.true(
    fastError <= bound,
    `${label}: fast error ${fastError.toExponential(3)} > bound ${bound.toExponential(3)} (naive float32 error ${naiveError.toExponential(3)})`,
  );
}

/** `count` distinct indices of [0, n): always the largest-|weights| entry, the rest seeded. */
export function sampleIndices(
  n: number,
  count: number,
  rand: () => number,
  weights?: ArrayLike<number>,
): number[] {
  const picked = new Set<number>();
  if (weights) {
    let best = 0;
    for (let i = 1; i < n; i++) if (Math.abs(weights[i]!) > Math.abs(weights[best]!)) best = i;
    picked.add(best);
  }
  if (count >= n) return Array.from({ length: n }, (_, i) => i);
  while (picked.size < count) picked.add(Math.floor(((rand() + 1) / 2) * n) % n);
  return [...picked];
}

/**
 * Checks analytic[i] against the central difference (f(x + h·e_i) − f(x − h·e_i)) / 2h at the
 * given indices: |fd − analytic| ≤ atol + rtol·|analytic|. x is perturbed in place and restored.
 */
export async function assertMatchesFiniteDifference<T extends Float32Array | Float64Array>(
  t: ExecutionContext,
  label: string,
  f: (x: T) => Promise<number>,
  x: T,
  analytic: ArrayLike<number>,
  indices: number[],
  options: { h: number; atol: number; rtol: number },
): Promise<void> {
  for (const i of indices) {
    const saved = x[i]!;
    x[i] = saved + options.h;
    const plus = await f(x);
    x[i] = saved - options.h;
    const minus = await f(x);
    x[i] = saved;
    const fd = (plus - minus) / (2 * options.h);
    if (Math.abs(fd - analytic[i]!) > options.atol + options.rtol * Math.abs(analytic[i]!)) {
      t.fail(`${label}[${i}]: analytic ${analytic[i]} vs finite difference ${fd} (h=${options.h})`);
      return;
    }
  }
  t.pass(`${label}: ${indices.length} entries within tolerance`);
}
