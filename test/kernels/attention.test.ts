// The CPU attention kernels against their float64 reference.
//
// Accuracy rule (as in FlashAttention's own tests): for each output — forward O and LSE, backward
// dQ, dK and dV — the flash kernel's max abs error against the float64 naive reference must be at
// most 2× the error of the naive float32 implementation against the same reference. Where the
// naive float32 error is exactly 0 the bound is an absolute 1e-6 instead. All three see the same
// inputs (float32 values, widened exactly to float64).
import test from 'ava';

import { native } from '../../worker-native/native.js';
import type { AttentionDims, AttentionMask } from '../../worker-native/attention.js';

const addon = native();
addon.setBlasThreads(1);

const ZERO_ERROR_FLOOR = 1e-6;

/** Deterministic uniform numbers in [-1, 1) (mulberry32). */
function random(seed: number): () => number {
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
interface Pair {
  f32: Float32Array;
  f64: Float64Array;
}

function tensor(length: number, rand: () => number, amplitude = 1): Pair {
  const f32 = new Float32Array(length);
  for (let i = 0; i < length; i++) f32[i] = amplitude * rand();
  return { f32, f64: Float64Array.from(f32) };
}

function maxAbsError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  return worst;
}

const qSize = (d: AttentionDims) => d.qLen * d.heads * d.headDim;
const kvSize = (d: AttentionDims) => d.kvLen * d.kvHeads * d.headDim;

interface Inputs {
  q: Pair;
  k: Pair;
  v: Pair;
  dout: Pair;
}

function inputs(d: AttentionDims, seed: number): Inputs {
  const rand = random(seed);
  // Queries three times larger than keys: scores of a few units, so the softmax is peaked and the
  // online rescaling actually matters.
  return {
    q: tensor(qSize(d), rand, 3),
    k: tensor(kvSize(d), rand),
    v: tensor(kvSize(d), rand),
    dout: tensor(qSize(d), rand),
  };
}

interface Forward<T> {
  o: T;
  lse: T;
}
interface Backward<T> {
  dq: T;
  dk: T;
  dv: T;
}

async function naive64(d: AttentionDims, mask: AttentionMask, x: Inputs) {
  const fwd = { o: new Float64Array(qSize(d)), lse: new Float64Array(d.qLen * d.heads) };
  await addon.naiveAttentionForward(d, mask, x.q.f64, x.k.f64, x.v.f64, fwd.o, fwd.lse);
  const bwd = {
    dq: new Float64Array(qSize(d)),
    dk: new Float64Array(kvSize(d)),
    dv: new Float64Array(kvSize(d)),
  };
  await addon.naiveAttentionBackward(d, mask, x.q.f64, x.k.f64, x.v.f64, x.dout.f64, bwd.dq, bwd.dk, bwd.dv);
  return { fwd, bwd };
}

async function naive32(d: AttentionDims, mask: AttentionMask, x: Inputs) {
  const fwd = { o: new Float32Array(qSize(d)), lse: new Float32Array(d.qLen * d.heads) };
  await addon.naiveAttentionForward(d, mask, x.q.f32, x.k.f32, x.v.f32, fwd.o, fwd.lse);
  const bwd = {
    dq: new Float32Array(qSize(d)),
    dk: new Float32Array(kvSize(d)),
    dv: new Float32Array(kvSize(d)),
  };
  await addon.naiveAttentionBackward(d, mask, x.q.f32, x.k.f32, x.v.f32, x.dout.f32, bwd.dq, bwd.dk, bwd.dv);
  return { fwd, bwd };
}

async function flashForward(
  d: AttentionDims,
  mask: AttentionMask,
  x: Inputs,
): Promise<Forward<Float32Array>> {
  const fwd = { o: new Float32Array(qSize(d)), lse: new Float32Array(d.qLen * d.heads) };
  await addon.flashAttentionForward(d, mask, x.q.f32, x.k.f32, x.v.f32, fwd.o, fwd.lse);
  return fwd;
}

async function flashBackward(
  d: AttentionDims,
  mask: AttentionMask,
  x: Inputs,
  fwd: Forward<Float32Array>,
): Promise<Backward<Float32Array>> {
  const bwd = {
    dq: new Float32Array(qSize(d)),
    dk: new Float32Array(kvSize(d)),
    dv: new Float32Array(kvSize(d)),
  };
  await addon.flashAttentionBackward(
    d,
    mask,
    x.q.f32,
    x.k.f32,
    x.v.f32,
    fwd.o,
    fwd.lse,
    x.dout.f32,
    bwd.dq,
    bwd.dk,
    bwd.dv,
  );
  return bwd;
}

type Named = Record<string, ArrayLike<number>>;

/** Asserts the 2× rule for every named output; returns the errors for the log. */
function assertWithinRule(
  t: { true(ok: boolean, message: string): void; log(...v: unknown[]): void },
  flash: Named,
  naive: Named,
  truth: Named,
): void {
  for (const name of Object.keys(truth)) {
    const naiveError = maxAbsError(naive[name]!, truth[name]!);
    const flashError = maxAbsError(flash[name]!, truth[name]!);
    const bound = naiveError === 0 ? ZERO_ERROR_FLOOR : 2 * naiveError;
    t.log(`${name}: flash ${flashError.toExponential(2)}  naive f32 ${naiveError.toExponential(2)}`);
    t.true(
      flashError <= bound,
      `${name}: flash error ${flashError} exceeds ${bound} (naive f32 error ${naiveError})`,
    );
  }
}

const cases: { title: string; dims: AttentionDims; mask: AttentionMask }[] = [
  {
    title: 'causal GQA, D=64',
    dims: { qLen: 300, kvLen: 300, heads: 4, kvHeads: 2, headDim: 64 },
    mask: 'causal',
  },
  {
    title: 'causal MHA, D=40',
    dims: { qLen: 300, kvLen: 300, heads: 3, kvHeads: 3, headDim: 40 },
    mask: 'causal',
  },
  {
    title: 'causal MQA, short',
    dims: { qLen: 7, kvLen: 7, heads: 4, kvHeads: 1, headDim: 40 },
    mask: 'causal',
  },
  // Longer than one 512-key block: the online softmax rescales across key blocks, the last one
  // partial; group 3 makes query blocks of 85 tokens.
  {
    title: 'causal GQA, several key blocks, D=64',
    dims: { qLen: 1100, kvLen: 1100, heads: 6, kvHeads: 2, headDim: 64 },
    mask: 'causal',
  },
  {
    title: 'unmasked MQA, several key blocks, D=40',
    dims: { qLen: 90, kvLen: 1300, heads: 3, kvHeads: 1, headDim: 40 },
    mask: 'none',
  },
  {
    title: 'unmasked GQA, q_len < kv_len, D=40',
    dims: { qLen: 197, kvLen: 300, heads: 4, kvHeads: 1, headDim: 40 },
    mask: 'none',
  },
  {
    title: 'unmasked MHA, q_len > kv_len, D=64',
    dims: { qLen: 300, kvLen: 130, heads: 2, kvHeads: 2, headDim: 64 },
    mask: 'none',
  },
];

for (const [index, { title, dims, mask }] of cases.entries()) {
  test(`flash forward and backward match the float64 reference within 2× naive float32 error: ${title}`, async (t) => {
    const x = inputs(dims, 100 + index);
    const truth = await naive64(dims, mask, x);
    const naive = await naive32(dims, mask, x);
    const fwd = await flashForward(dims, mask, x);
    assertWithinRule(t, { ...fwd }, { ...naive.fwd }, { ...truth.fwd });
    const bwd = await flashBackward(dims, mask, x, fwd);
    assertWithinRule(t, { ...bwd }, { ...naive.bwd }, { ...truth.bwd });
  });
}

test('the float64 reference backward matches central finite differences of its forward', async (t) => {
  for (const [dims, mask] of [
    [{ qLen: 4, kvLen: 4, heads: 2, kvHeads: 1, headDim: 3, scale: 0.7 }, 'causal'],
    [{ qLen: 3, kvLen: 5, heads: 2, kvHeads: 2, headDim: 2 }, 'none'],
  ] as const) {
    const x = inputs(dims, 7);
    const { bwd } = await naive64(dims, mask, x);
    // loss = Σ dout∘O, so ∂loss/∂x is what the backward computes from dout.
    const loss = async (q: Float64Array, k: Float64Array, v: Float64Array) => {
      const o = new Float64Array(qSize(dims));
      await addon.naiveAttentionForward(dims, mask, q, k, v, o, new Float64Array(dims.qLen * dims.heads));
      return o.reduce((sum, value, i) => sum + value * x.dout.f64[i]!, 0);
    };
    const h = 1e-6;
    const tensors = { dq: x.q.f64, dk: x.k.f64, dv: x.v.f64 } as const;
    for (const name of ['dq', 'dk', 'dv'] as const) {
      const param = tensors[name];
      let worst = 0;
      for (let i = 0; i < param.length; i++) {
        const saved = param[i]!;
        param[i] = saved + h;
        const up = await loss(x.q.f64, x.k.f64, x.v.f64);
        param[i] = saved - h;
        const down = await loss(x.q.f64, x.k.f64, x.v.f64);
        param[i] = saved;
        worst = Math.max(worst, Math.abs((up - down) / (2 * h) - bwd[name][i]!));
      }
      t.true(worst < 1e-7, `${mask} ${name}: finite differences differ by ${worst}`);
    }
  }
});

test('ring usage: backward over two key halves with the merged O and LSE adds up to the full gradients', async (t) => {
  const full: AttentionDims = { qLen: 150, kvLen: 260, heads: 4, kvHeads: 2, headDim: 64 };
  const half = (kvLen: number): AttentionDims => ({ ...full, kvLen });
  const x = inputs(full, 11);
  const truth = await naive64(full, 'none', x);
  const naive = await naive32(full, 'none', x);
  const split = 170 * full.kvHeads * full.headDim;
  const part = (p: Pair, from: number, to?: number): Pair => ({
    f32: p.f32.slice(from, to),
    f64: p.f64.slice(from, to),
  });
  const a = { ...x, k: part(x.k, 0, split), v: part(x.v, 0, split) };
  const b = { ...x, k: part(x.k, split), v: part(x.v, split) };

  // Forward: attention over each half, merged.
  const acc = await flashForward(half(170), 'none', a);
  const other = await flashForward(half(90), 'none', b);
  await addon.mergeAttentionPartial(full.qLen * full.heads, full.headDim, acc.o, acc.lse, other.o, other.lse);
  assertWithinRule(t, { ...acc }, { ...naive.fwd }, { ...truth.fwd });

  // Backward: both halves add into one dq; each writes its own slice of dk/dv.
  const dq = new Float32Array(qSize(full));
  const dkA = new Float32Array(split);
  const dvA = new Float32Array(split);
  const dkB = new Float32Array(kvSize(full) - split);
  const dvB = new Float32Array(kvSize(full) - split);
  await addon.flashAttentionBackward(
    half(170),
    'none',
    a.q.f32,
    a.k.f32,
    a.v.f32,
    acc.o,
    acc.lse,
    x.dout.f32,
    dq,
    dkA,
    dvA,
  );
  await addon.flashAttentionBackward(
    half(90),
    'none',
    b.q.f32,
    b.k.f32,
    b.v.f32,
    acc.o,
    acc.lse,
    x.dout.f32,
    dq,
    dkB,
    dvB,
  );
  const concat = (first: Float32Array, second: Float32Array) => {
    const out = new Float32Array(first.length + second.length);
    out.set(first);
    out.set(second, first.length);
    return out;
  };
  assertWithinRule(t, { dq, dk: concat(dkA, dkB), dv: concat(dvA, dvB) }, { ...naive.bwd }, { ...truth.bwd });
});

test('the flash backward adds into dq, dk and dv instead of overwriting them', async (t) => {
  const dims: AttentionDims = { qLen: 200, kvLen: 200, heads: 4, kvHeads: 2, headDim: 40 };
  const x = inputs(dims, 5);
  const fwd = await flashForward(dims, 'causal', x);
  const plain = await flashBackward(dims, 'causal', x, fwd);
  const start = {
    dq: new Float32Array(qSize(dims)),
    dk: new Float32Array(kvSize(dims)),
    dv: new Float32Array(kvSize(dims)),
  };
  const rand = random(9);
  for (const a of Object.values(start)) for (let i = 0; i < a.length; i++) a[i] = rand();
  const acc = { dq: start.dq.slice(), dk: start.dk.slice(), dv: start.dv.slice() };
  await addon.flashAttentionBackward(
    dims,
    'causal',
    x.q.f32,
    x.k.f32,
    x.v.f32,
    fwd.o,
    fwd.lse,
    x.dout.f32,
    acc.dq,
    acc.dk,
    acc.dv,
  );
  for (const name of ['dq', 'dk', 'dv'] as const) {
    // Adding the start values before or after summing the blocks differs only by rounding.
    let worst = 0;
    for (let i = 0; i < acc[name].length; i++) {
      worst = Math.max(worst, Math.abs(acc[name][i]! - (start[name][i]! + plain[name][i]!)));
    }
    t.true(worst < 1e-5, `${name}: accumulated result differs from start + gradient by ${worst}`);
    t.true(maxAbsError(acc[name], plain[name]) > 0.1, `${name}: the start values were dropped`);
  }
});

test('merging with an empty (-inf) partial is the identity, on either side', async (t) => {
  const rows = 6;
  const dim = 5;
  const rand = random(3);
  const o = tensor(rows * dim, rand).f32;
  const lse = tensor(rows, rand).f32;
  const emptyO = new Float32Array(rows * dim).fill(Number.NaN); // never read: its weight is 0
  const emptyLse = new Float32Array(rows).fill(-Infinity);

  const acc = { o: o.slice(), lse: lse.slice() };
  await addon.mergeAttentionPartial(rows, dim, acc.o, acc.lse, emptyO, emptyLse);
  t.deepEqual(acc, { o, lse });

  const fromEmpty = { o: emptyO.slice(), lse: emptyLse.slice() };
  await addon.mergeAttentionPartial(rows, dim, fromEmpty.o, fromEmpty.lse, o, lse);
  t.deepEqual(fromEmpty, { o, lse });

  const bothEmpty = { o: emptyO.slice(), lse: emptyLse.slice() };
  await addon.mergeAttentionPartial(rows, dim, bothEmpty.o, bothEmpty.lse, emptyO, emptyLse);
  t.deepEqual(bothEmpty, { o: new Float32Array(rows * dim), lse: emptyLse });
});

test('flash forward and backward are deterministic: two runs are bitwise equal', async (t) => {
  const dims: AttentionDims = { qLen: 333, kvLen: 333, heads: 4, kvHeads: 2, headDim: 64 };
  const x = inputs(dims, 21);
  const run = async () => {
    const fwd = await flashForward(dims, 'causal', x);
    return { ...fwd, ...(await flashBackward(dims, 'causal', x, fwd)) };
  };
  const first = await run();
  const second = await run();
  for (const name of ['o', 'lse', 'dq', 'dk', 'dv'] as const) {
    t.true(
      Buffer.from(first[name].buffer).equals(Buffer.from(second[name].buffer)),
      `${name} differs between runs`,
    );
  }
});

test('the workspace does not grow with the square of the sequence length', (t) => {
  const at = (s: number) =>
    addon.flashAttentionWorkspace({ qLen: s, kvLen: s, heads: 4, kvHeads: 2, headDim: 64 });
  const small = at(1024);
  const large = at(32768);
  t.log(`workspace floats at S=32768: forward ${large.forward}, backward ${large.backward}`);
  // Constant once S exceeds the block size; in any case far below one S×S score matrix.
  t.deepEqual(large, small);
  t.true(large.backward < (32768 * 32768) / 1000);
  t.true(at(1).forward < small.forward);
});

test('bad dimensions and arrays are errors that name the problem', async (t) => {
  const dims: AttentionDims = { qLen: 4, kvLen: 4, heads: 4, kvHeads: 2, headDim: 8 };
  const q = new Float32Array(qSize(dims));
  const kv = new Float32Array(kvSize(dims));
  const lse = new Float32Array(dims.qLen * dims.heads);
  const forward = (d: AttentionDims, mask: AttentionMask, qArg: Float32Array = new Float32Array(qSize(d))) =>
    addon.flashAttentionForward(
      d,
      mask,
      qArg,
      new Float32Array(kvSize(d)),
      new Float32Array(kvSize(d)),
      new Float32Array(qSize(d)),
      new Float32Array(d.qLen * d.heads),
    );

  await t.throwsAsync(forward({ ...dims, heads: 3 }, 'none'), {
    message: /heads \(3\) must be divisible by kv_heads \(2\)/,
  });
  await t.throwsAsync(forward({ ...dims, kvLen: 5 }, 'causal'), {
    message: /causal attention needs q_len == kv_len/,
  });
  await t.throwsAsync(forward({ ...dims, headDim: 0 }, 'none'), {
    message: /head_dim must be positive, got 0/,
  });
  await t.throwsAsync(forward(dims, 'none', new Float32Array(10)), {
    message: /q has 10 elements, expected qLen·heads·headDim = 128/,
  });
  await t.throwsAsync(
    addon.naiveAttentionBackward({ ...dims, kvHeads: 0 }, 'none', q, kv, kv, q, q, kv, kv),
    {
      message: /kv_heads must be positive/,
    },
  );
  await t.throwsAsync(addon.mergeAttentionPartial(3, 8, q, lse, q, lse), {
    message: /oAcc has 128 elements, expected rows·headDim = 24/,
  });
  t.throws(
    () =>
      addon.flashAttentionForward(
        dims,
        'none',
        new Float64Array(q.length) as unknown as Float32Array,
        kv,
        kv,
        q,
        lse,
      ),
    {
      instanceOf: TypeError,
      message: /q\) must be a Float32Array/,
    },
  );
  t.throws(() => addon.flashAttentionForward(dims, 'sliding' as AttentionMask, q, kv, kv, q, lse), {
    instanceOf: TypeError,
    message: /mask\) must be 'causal' or 'none'/,
  });
  t.throws(() => addon.flashAttentionWorkspace({ ...dims, qLen: -1 }), {
    message: /q_len must be positive, got -1/,
  });
  t.throws(() => addon.flashAttentionWorkspace({ ...dims, headDim: 2.5 }), {
    message: /dims.headDim must be an integer/,
  });
});
