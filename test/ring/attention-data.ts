// Deterministic attention inputs for the ring tests: every rank process and the test itself
// generate the same full-sequence Q, K, V and dO from a seed, so nothing large crosses processes.
export interface RingCase {
  seqLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  seed: number;
}

export interface AttentionInputs {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  dout: Float64Array;
}

/** mulberry32: small, fast, and identical in every process. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values are float32-representable, so float32 and float64 references see the same inputs. */
export function attentionInputs(c: RingCase): AttentionInputs {
  const next = generator(c.seed);
  const fill = (n: number, scale: number) =>
    Float64Array.from({ length: n }, () => Math.fround((next() * 2 - 1) * scale));
  return {
    q: fill(c.seqLen * c.heads * c.headDim, 1.5),
    k: fill(c.seqLen * c.kvHeads * c.headDim, 1.5),
    v: fill(c.seqLen * c.kvHeads * c.headDim, 1),
    dout: fill(c.seqLen * c.heads * c.headDim, 1),
  };
}

/** Rows of a token-major [seqLen, width] array at the given token positions, as float32. */
export function gatherRows(full: Float64Array, width: number, positions: Int32Array): Float32Array {
  const out = new Float32Array(positions.length * width);
  positions.forEach((p, i) => out.set(full.subarray(p * width, (p + 1) * width), i * width));
  return out;
}

/** The inverse: writes a rank's local rows back at their global positions. */
export function scatterRows(
  local: Float32Array,
  width: number,
  positions: Int32Array,
  into: Float32Array,
): void {
  positions.forEach((p, i) => into.set(local.subarray(i * width, (i + 1) * width), p * width));
}
