// References for the CUDA kernels, and the accuracy rule they are held to.
//
// The bf16 rule (as FlashAttention's own tests): a kernel's max abs error against the float64
// reference must be at most 2× that of a naive bf16 implementation against the same reference.
// Every reference here is written once, with a `round` applied to the output of each stage: with
// `exact` it is the float64 truth; with `toBf16` it is the naive bf16 implementation, the way a
// framework that keeps every intermediate tensor in bf16 computes it (each stage's arithmetic in
// high precision, its result rounded to bf16). All three see the same inputs: bf16 values.
import type { ExecutionContext } from 'ava';

export type Round = (x: number) => number;

export const exact: Round = (x) => x;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** x rounded to bf16 (to float32 first, then to nearest even bf16), as a number. */
export const toBf16: Round = (x) => {
  scratchF32[0] = x;
  let bits = scratchU32[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return NaN;
  bits = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 0;
  scratchU32[0] = (bits & 0xffff0000) >>> 0;
  return scratchF32[0];
};

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

/** n bf16 values uniform in [-amplitude, amplitude), as a Float32Array. */
export function bf16Tensor(n: number, rand: () => number, amplitude = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = toBf16(amplitude * rand());
  return out;
}

export function maxAbsError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} != ${want.length}`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!);
    if (Number.isNaN(e)) return Infinity;
    worst = Math.max(worst, e);
  }
  return worst;
}

/**
 * Asserts the bf16 rule for one output. Where the naive error is exactly 0 the bound is `floor`.
 */
export function assertBf16Rule(
  t: ExecutionContext,
  name: string,
  got: ArrayLike<number>,
  naive: ArrayLike<number>,
  truth: ArrayLike<number>,
  floor = 0,
): void {
  const kernel = maxAbsError(got, truth);
  const baseline = maxAbsError(naive, truth);
  const bound = baseline > 0 ? 2 * baseline : floor;
  t.log(`${name}: kernel error ${kernel.toExponential(3)}, naive bf16 error ${baseline.toExponential(3)}`);
  t.true(kernel <= bound, `${name}: error ${kernel} exceeds the bound ${bound} (2 × naive bf16 ${baseline})`);
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export function rmsNormForward(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  tokens: number,
  channels: number,
  eps: number,
  round: Round,
) {
  const out = new Float64Array(tokens * channels);
  const rstd = new Float64Array(tokens);
  for (let t = 0; t < tokens; t++) {
    let sumSq = 0;
    for (let c = 0; c < channels; c++) sumSq += x[t * channels + c]! ** 2;
    const r = round(1 / Math.sqrt(round(sumSq / channels) + eps));
    rstd[t] = r;
    for (let c = 0; c < channels; c++) out[t * channels + c] = round(w[c]! * round(x[t * channels + c]! * r));
  }
  return { out, rstd };
}

export function rmsNormBackward(
  dout: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  tokens: number,
  channels: number,
  eps: number,
  round: Round,
) {
  const { rstd } = rmsNormForward(x, w, tokens, channels, eps, round);
  const dx = new Float64Array(tokens * channels);
  const dweight = new Float64Array(channels);
  for (let t = 0; t < tokens; t++) {
    const r = rstd[t]!;
    const xhat = (c: number) => round(x[t * channels + c]! * r);
    const g = (c: number) => round(dout[t * channels + c]! * w[c]!);
    let dot = 0;
    for (let c = 0; c < channels; c++) dot += g(c) * xhat(c);
    const meanDot = round(dot / channels);
    for (let c = 0; c < channels; c++) {
      dx[t * channels + c] = round(r * round(g(c) - round(xhat(c) * meanDot)));
      dweight[c] = dweight[c]! + dout[t * channels + c]! * xhat(c);
    }
  }
  return { dx, dweight: dweight.map(round) };
}

/** cos and sin of position · theta^(−2i/headDim), in float64. */
export function ropeTables(positions: Int32Array, headDim: number, theta: number) {
  const half = headDim / 2;
  const cos = new Float64Array(positions.length * half);
  const sin = new Float64Array(positions.length * half);
  for (let t = 0; t < positions.length; t++)
    for (let i = 0; i < half; i++) {
      const angle = positions[t]! * Math.pow(theta, (-2 * i) / headDim);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  return { cos, sin };
}

export function rope(
  x: ArrayLike<number>,
  positions: Int32Array,
  heads: number,
  headDim: number,
  theta: number,
  inverse: boolean,
  round: Round,
) {
  const half = headDim / 2;
  const { cos, sin } = ropeTables(positions, headDim, theta);
  const out = new Float64Array(x.length);
  for (let t = 0; t < positions.length; t++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const base = (t * heads + h) * headDim;
        const c = round(cos[t * half + i]!);
        const s = round((inverse ? -1 : 1) * sin[t * half + i]!);
        const a = x[base + i]!,
          b = x[base + i + half]!;
        out[base + i] = round(round(a * c) - round(b * s));
        out[base + i + half] = round(round(b * c) + round(a * s));
      }
  return out;
}

export function swiGluForward(gate: ArrayLike<number>, up: ArrayLike<number>, round: Round) {
  const act = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    act[i] = round(round(g * round(sigmoid(g))) * up[i]!);
  }
  return act;
}

export function swiGluBackward(
  dact: ArrayLike<number>,
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  round: Round,
) {
  const dgate = new Float64Array(gate.length);
  const dup = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!,
      u = up[i]!,
      d = dact[i]!;
    const s = round(sigmoid(g));
    dup[i] = round(d * round(g * s));
    const dsilu = round(s * round(1 + round(g * round(1 - s))));
    dgate[i] = round(round(d * u) * dsilu);
  }
  return { dgate, dup };
}

/** C = alpha·op(A)·op(B) + beta·C, row-major; the product is one stage (rounded once). */
export function gemm(
  o: { transA?: boolean; transB?: boolean; m: number; n: number; k: number; alpha?: number; beta?: number },
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c: ArrayLike<number> | undefined,
  round: Round,
) {
  const { m, n, k } = o;
  const alpha = o.alpha ?? 1,
    beta = o.beta ?? 0;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        const av = o.transA ? a[p * m + i]! : a[i * k + p]!;
        const bv = o.transB ? b[j * k + p]! : b[p * n + j]!;
        sum += av * bv;
      }
      out[i * n + j] = round(alpha * sum + (beta !== 0 ? beta * c![i * n + j]! : 0));
    }
  return out;
}

export const IGNORE_INDEX = -100;

/** The full-logits cross-entropy; lossSum is Σ over counted tokens, gradients of gradScale·lossSum. */
export function crossEntropy(
  hidden: ArrayLike<number>,
  weight: ArrayLike<number>,
  labels: Int32Array,
  tokens: number,
  channels: number,
  vocab: number,
  gradScale: number,
  round: Round,
) {
  const logits = gemm({ m: tokens, n: vocab, k: channels, transB: true }, hidden, weight, undefined, round);
  const dlogits = new Float64Array(tokens * vocab);
  let lossSum = 0;
  let count = 0;
  for (let t = 0; t < tokens; t++) {
    const y = labels[t]!;
    if (y === IGNORE_INDEX) continue;
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    const max = Math.max(...row);
    let sum = 0;
    for (const l of row) sum += Math.exp(l - max);
    const lse = round(max + Math.log(sum));
    lossSum += round(lse - row[y]!);
    count += 1;
    for (let v = 0; v < vocab; v++)
      dlogits[t * vocab + v] = round(gradScale * (round(Math.exp(row[v]! - lse)) - (v === y ? 1 : 0)));
  }
  const dhidden = gemm({ m: tokens, n: channels, k: vocab }, dlogits, weight, undefined, round);
  const dweight = gemm({ m: vocab, n: channels, k: tokens, transA: true }, dlogits, hidden, undefined, round);
  return { lossSum: round(lossSum), count, dhidden, dweight };
}

export interface AdamWHyperRef {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** The textbook AdamW step (as the CPU NaiveAdamWUpdate), every operation rounded by `round`. */
export function adamW(
  h: AdamWHyperRef,
  step: number,
  params: ArrayLike<number>,
  grads: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  round: Round,
) {
  const r = round;
  const [lr, b1, b2, eps, wd] = [r(h.lr), r(h.beta1), r(h.beta2), r(h.eps), r(h.weightDecay)];
  const bias1 = r(1 - r(Math.pow(b1, step)));
  const bias2 = r(1 - r(Math.pow(b2, step)));
  const out = {
    params: new Float64Array(params.length),
    m: new Float64Array(params.length),
    v: new Float64Array(params.length),
  };
  for (let i = 0; i < params.length; i++) {
    const g = grads[i]!;
    const mi = r(r(b1 * m[i]!) + r(r(1 - b1) * g));
    const vi = r(r(b2 * v[i]!) + r(r(1 - b2) * r(g * g)));
    const mHat = r(mi / bias1);
    const vHat = r(vi / bias2);
    const update = r(r(mHat / r(r(Math.sqrt(vHat)) + eps)) + r(wd * params[i]!));
    out.params[i] = r(params[i]! - r(lr * update));
    out.m[i] = mi;
    out.v[i] = vi;
  }
  return out;
}
