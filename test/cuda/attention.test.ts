// The CUDA flash-attention kernels against the float64 reference under the bf16 rule
// (reference.ts): for O, LSE, dQ, dK and dV, error at most twice a naive bf16 implementation's.
// Sizes are chosen off the 64-row tiles so partial tiles, the causal diagonal tile and the skipped
// tiles above it are all exercised, with grouped-query heads. Needs a GPU.
import type { ExecutionContext } from 'ava';

import type { CudaApi, CudaAttentionMask } from '../../worker-native/cuda.js';
import { attentionBackward, attentionForward, type Dims } from './attention-reference.js';
import { gpuTest } from './gpu.js';
import { assertBf16Rule, bf16Tensor, exact, maxAbsError, random, toBf16 } from './reference.js';

interface Case {
  mask: CudaAttentionMask;
  qLen: number;
  kvLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

const cases: Case[] = [
  { mask: 'causal', qLen: 200, kvLen: 200, heads: 4, kvHeads: 2, headDim: 64 },
  { mask: 'causal', qLen: 130, kvLen: 130, heads: 2, kvHeads: 1, headDim: 128 },
  { mask: 'none', qLen: 100, kvLen: 150, heads: 4, kvHeads: 4, headDim: 64 },
  { mask: 'none', qLen: 64, kvLen: 257, heads: 6, kvHeads: 2, headDim: 128 },
];

function inputs(c: Case, seed: number) {
  const rand = random(seed);
  const qSize = c.qLen * c.heads * c.headDim,
    kvSize = c.kvLen * c.kvHeads * c.headDim;
  // Queries three times larger than keys: scores of a few units, so the softmax is peaked and the
  // online rescaling matters.
  return {
    q: bf16Tensor(qSize, rand, 3),
    k: bf16Tensor(kvSize, rand),
    v: bf16Tensor(kvSize, rand),
    dout: bf16Tensor(qSize, rand),
  };
}

async function check(t: ExecutionContext, cuda: CudaApi, c: Case, seed: number): Promise<void> {
  const dims: Dims = { ...c, scale: 1 / Math.sqrt(c.headDim) };
  const causal = c.mask === 'causal';
  const x = inputs(c, seed);
  const fwd = await cuda.cudaFlashAttentionForward(dims, c.mask, x.q, x.k, x.v);
  const truth = attentionForward(dims, causal, x.q, x.k, x.v, exact);
  const naive = attentionForward(dims, causal, x.q, x.k, x.v, toBf16);
  assertBf16Rule(t, 'O', fwd.o, naive.o, truth.o);
  assertBf16Rule(t, 'LSE', fwd.lse, naive.lse, truth.lse);

  // The backward takes the kernel's own forward results, as training does.
  const bwd = await cuda.cudaFlashAttentionBackward(dims, c.mask, x.q, x.k, x.v, fwd.o, fwd.lse, x.dout);
  const gTruth = attentionBackward(dims, causal, x.q, x.k, x.v, x.dout, exact);
  const gNaive = attentionBackward(dims, causal, x.q, x.k, x.v, x.dout, toBf16);
  assertBf16Rule(t, 'dQ', bwd.dq, gNaive.dq, gTruth.dq);
  assertBf16Rule(t, 'dK', bwd.dk, gNaive.dk, gTruth.dk);
  assertBf16Rule(t, 'dV', bwd.dv, gNaive.dv, gTruth.dv);
}

for (const [i, c] of cases.entries()) {
  const title = `flash attention ${c.mask}, ${c.qLen}×${c.kvLen}, ${c.heads}/${c.kvHeads} heads, head_dim ${c.headDim}`;
  gpuTest(title, (t, cuda) => check(t, cuda, c, 100 + i));
}

gpuTest('flash attention backward is deterministic: two runs give the same bits', async (t, cuda) => {
  const c = cases[0]!;
  const dims = { ...c };
  const x = inputs(c, 7);
  const fwd = await cuda.cudaFlashAttentionForward(dims, c.mask, x.q, x.k, x.v);
  const a = await cuda.cudaFlashAttentionBackward(dims, c.mask, x.q, x.k, x.v, fwd.o, fwd.lse, x.dout);
  const b = await cuda.cudaFlashAttentionBackward(dims, c.mask, x.q, x.k, x.v, fwd.o, fwd.lse, x.dout);
  t.deepEqual(Buffer.from(a.dq.buffer), Buffer.from(b.dq.buffer));
  t.deepEqual(Buffer.from(a.dk.buffer), Buffer.from(b.dk.buffer));
  t.deepEqual(Buffer.from(a.dv.buffer), Buffer.from(b.dv.buffer));
});

gpuTest(
  'the backward adds into the gradients it is given, as ring attention accumulates them',
  async (t, cuda) => {
    const c = cases[3]!;
    const x = inputs(c, 8);
    const fwd = await cuda.cudaFlashAttentionForward(c, c.mask, x.q, x.k, x.v);
    const fresh = await cuda.cudaFlashAttentionBackward(c, c.mask, x.q, x.k, x.v, fwd.o, fwd.lse, x.dout);
    const rand = random(12);
    const start = {
      dq: Float32Array.from(fresh.dq, () => rand()),
      dk: Float32Array.from(fresh.dk, () => rand()),
      dv: Float32Array.from(fresh.dv, () => rand()),
    };
    const added = await cuda.cudaFlashAttentionBackward(
      c,
      c.mask,
      x.q,
      x.k,
      x.v,
      fwd.o,
      fwd.lse,
      x.dout,
      start,
    );
    for (const key of ['dq', 'dk', 'dv'] as const) {
      // start + gradient, up to the float32 roundings of the product and the sum: 2 ulps of the largest.
      const want = Float64Array.from(start[key], (s, i) => s + fresh[key][i]!);
      const largest = Math.max(...Array.from(want, Math.abs));
      const error = maxAbsError(added[key], want);
      t.true(error <= 2 ** -22 * largest, `${key}: error ${error} with values up to ${largest}`);
    }
  },
);

gpuTest(
  'causal rows see only their past: changing a future key changes nothing before it',
  async (t, cuda) => {
    const c: Case = { mask: 'causal', qLen: 150, kvLen: 150, heads: 2, kvHeads: 2, headDim: 64 };
    const x = inputs(c, 9);
    const before = await cuda.cudaFlashAttentionForward(c, 'causal', x.q, x.k, x.v);
    const changed = 120; // a token in the third tile
    const k2 = x.k.slice(),
      v2 = x.v.slice();
    for (let i = changed * c.kvHeads * c.headDim; i < (changed + 1) * c.kvHeads * c.headDim; i++) {
      k2[i] = 1;
      v2[i] = -1;
    }
    const after = await cuda.cudaFlashAttentionForward(c, 'causal', x.q, k2, v2);
    const rowLen = c.heads * c.headDim;
    t.deepEqual(
      Array.from(after.o.subarray(0, changed * rowLen)),
      Array.from(before.o.subarray(0, changed * rowLen)),
    );
    t.notDeepEqual(
      Array.from(after.o.subarray(changed * rowLen)),
      Array.from(before.o.subarray(changed * rowLen)),
    );
  },
);
