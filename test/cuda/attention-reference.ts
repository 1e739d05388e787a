// The materialising attention reference for the CUDA flash kernels: float64 truth with `exact`,
// the naive bf16 implementation with `toBf16` (see reference.ts). Stages, each rounded once:
//   S = scale·Q·Kᵀ (masked to −inf),  P = softmax(S),  lse = logsumexp(S),  O = P·V
//   dV = Pᵀ·dO,  dP = dO·Vᵀ,  D = rowsum(P ∘ dP),  dS = P ∘ (dP − D),  dQ = scale·dS·K,  dK = scale·dSᵀ·Q
// Layouts are token-major as the kernels': q, o [qLen, heads, headDim], k, v [kvLen, kvHeads, headDim].
import type { Round } from './reference.js';

export interface Dims {
  qLen: number;
  kvLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
}

interface HeadScores {
  p: Float64Array; // [qLen, kvLen], rounded
  lse: Float64Array; // [qLen]
}

function headScores(
  d: Dims,
  causal: boolean,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  h: number,
  round: Round,
): HeadScores {
  const kvh = Math.floor(h / (d.heads / d.kvHeads));
  const { qLen, kvLen, headDim: D } = d;
  const p = new Float64Array(qLen * kvLen);
  const lse = new Float64Array(qLen);
  const s = new Float64Array(kvLen);
  for (let i = 0; i < qLen; i++) {
    let max = -Infinity;
    for (let j = 0; j < kvLen; j++) {
      if (causal && j > i) {
        s[j] = -Infinity;
        continue;
      }
      let dot = 0;
      for (let x = 0; x < D; x++) dot += q[(i * d.heads + h) * D + x]! * k[(j * d.kvHeads + kvh) * D + x]!;
      s[j] = round(d.scale * dot);
      max = Math.max(max, s[j]!);
    }
    let sum = 0;
    for (let j = 0; j < kvLen; j++) sum += Math.exp(s[j]! - max);
    const rowLse = max + Math.log(sum);
    lse[i] = round(rowLse);
    for (let j = 0; j < kvLen; j++) p[i * kvLen + j] = round(Math.exp(s[j]! - rowLse));
  }
  return { p, lse };
}

export function attentionForward(
  d: Dims,
  causal: boolean,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  round: Round,
) {
  const { qLen, kvLen, headDim: D } = d;
  const o = new Float64Array(qLen * d.heads * D);
  const lse = new Float64Array(qLen * d.heads);
  for (let h = 0; h < d.heads; h++) {
    const kvh = Math.floor(h / (d.heads / d.kvHeads));
    const scores = headScores(d, causal, q, k, h, round);
    for (let i = 0; i < qLen; i++) {
      lse[i * d.heads + h] = scores.lse[i]!;
      for (let x = 0; x < D; x++) {
        let sum = 0;
        for (let j = 0; j < kvLen; j++) sum += scores.p[i * kvLen + j]! * v[(j * d.kvHeads + kvh) * D + x]!;
        o[(i * d.heads + h) * D + x] = round(sum);
      }
    }
  }
  return { o, lse };
}

export function attentionBackward(
  d: Dims,
  causal: boolean,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dout: ArrayLike<number>,
  round: Round,
) {
  const { qLen, kvLen, headDim: D } = d;
  const dq = new Float64Array(qLen * d.heads * D);
  const dk = new Float64Array(kvLen * d.kvHeads * D);
  const dv = new Float64Array(kvLen * d.kvHeads * D);
  const dp = new Float64Array(kvLen);
  for (let h = 0; h < d.heads; h++) {
    const kvh = Math.floor(h / (d.heads / d.kvHeads));
    const { p } = headScores(d, causal, q, k, h, round);
    const qAt = (i: number, x: number) => q[(i * d.heads + h) * D + x]!;
    const doAt = (i: number, x: number) => dout[(i * d.heads + h) * D + x]!;
    const kvAt = (j: number, x: number) => (j * d.kvHeads + kvh) * D + x;
    for (let i = 0; i < qLen; i++) {
      let rowDot = 0;
      for (let j = 0; j < kvLen; j++) {
        let sum = 0;
        for (let x = 0; x < D; x++) sum += doAt(i, x) * v[kvAt(j, x)]!;
        dp[j] = round(sum);
        rowDot += p[i * kvLen + j]! * dp[j]!;
      }
      const dsum = round(rowDot);
      for (let j = 0; j < kvLen; j++) {
        const pij = p[i * kvLen + j]!;
        if (pij === 0) continue;
        const ds = round(pij * (dp[j]! - dsum));
        for (let x = 0; x < D; x++) {
          dq[(i * d.heads + h) * D + x] = dq[(i * d.heads + h) * D + x]! + ds * k[kvAt(j, x)]!;
          dk[kvAt(j, x)] = dk[kvAt(j, x)]! + ds * qAt(i, x);
          dv[kvAt(j, x)] = dv[kvAt(j, x)]! + pij * doAt(i, x);
        }
      }
    }
  }
  return {
    dq: dq.map((x) => round(d.scale * x)),
    dk: dk.map((x) => round(d.scale * x)),
    dv: dv.map(round),
  };
}
