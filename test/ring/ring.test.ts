// Ring attention across real rank processes talking through gloo over loopback, checked against
// attention over the whole sequence in one process. The rule is flash-attention's: the ring's
// error against a float64 reference is at most twice that of a naive float32 implementation.
import test, { type ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';

import { RankGroup } from '../../worker-native/host/rank-processes.js';
import { native } from '../../worker-native/native.js';
import '../../worker-native/attention.js';
import { shardPositions, type Sharding } from '../../worker-native/ring.js';
import { useRedis } from '../helpers/redis.js';
import { attentionInputs, scatterRows, type RingCase } from './attention-data.js';
import type { RankJob } from './rank-main.js';

const redis = useRedis(test);
const rankMain = fileURLToPath(new URL('./rank-main.js', import.meta.url));
let prefixes = 0;

interface Gathered {
  o: Float32Array;
  lse: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  computeSeconds: number[];
}

interface Report {
  done: true;
  ok: boolean;
  rank: number;
  error?: string;
  o: number[];
  lse: number[];
  dq: number[];
  dk: number[];
  dv: number[];
  forward: { computeSeconds: number };
  backward: { computeSeconds: number };
}

function startRing(
  t: ExecutionContext,
  data: RingCase,
  world: number,
  sharding: Sharding,
  extra: Partial<RankJob> = {},
  die?: number,
): RankGroup {
  const prefix = `longctx/ring-test-${process.pid}-${prefixes++}/1`;
  const group = new RankGroup({
    script: rankMain,
    ranks: [...Array(world).keys()],
    args: (rank) => [
      JSON.stringify({
        rank,
        world,
        redisPort: redis().port,
        prefix,
        sharding,
        data,
        timeoutMs: 20_000,
        ...extra,
        die: rank === die,
      } satisfies RankJob),
    ],
  });
  t.teardown(() => group.stop());
  return group;
}

async function runRing(
  t: ExecutionContext,
  data: RingCase,
  world: number,
  sharding: Sharding,
): Promise<Gathered> {
  const group = startRing(t, data, world, sharding);
  const qWidth = data.heads * data.headDim;
  const kvWidth = data.kvHeads * data.headDim;
  const out: Gathered = {
    o: new Float32Array(data.seqLen * qWidth),
    lse: new Float32Array(data.seqLen * data.heads),
    dq: new Float32Array(data.seqLen * qWidth),
    dk: new Float32Array(data.seqLen * kvWidth),
    dv: new Float32Array(data.seqLen * kvWidth),
    computeSeconds: [],
  };
  for (const exit of await group.exited()) {
    const r = exit.messages.find((m) => m.done === true) as Report | undefined;
    if (!r?.ok)
      throw new Error(`rank ${exit.rank} failed (${exit.code ?? exit.signal}): ${r?.error ?? exit.stderr}`);
    const positions = shardPositions(data.seqLen, world, exit.rank, sharding);
    scatterRows(Float32Array.from(r.o), qWidth, positions, out.o);
    scatterRows(Float32Array.from(r.lse), data.heads, positions, out.lse);
    scatterRows(Float32Array.from(r.dq), qWidth, positions, out.dq);
    scatterRows(Float32Array.from(r.dk), kvWidth, positions, out.dk);
    scatterRows(Float32Array.from(r.dv), kvWidth, positions, out.dv);
    out.computeSeconds.push(r.forward.computeSeconds + r.backward.computeSeconds);
  }
  return out;
}

type Outputs = Record<'o' | 'lse' | 'dq' | 'dk' | 'dv', Float32Array | Float64Array>;

/** Naive causal attention over the whole sequence in the precision of the arrays. */
async function naive<T extends Float32Array | Float64Array>(
  data: RingCase,
  make: (n: number) => T,
  from: (a: Float64Array) => T,
): Promise<Outputs> {
  const inputs = attentionInputs(data);
  const dims = {
    qLen: data.seqLen,
    kvLen: data.seqLen,
    heads: data.heads,
    kvHeads: data.kvHeads,
    headDim: data.headDim,
  };
  const q = from(inputs.q),
    k = from(inputs.k),
    v = from(inputs.v),
    dout = from(inputs.dout);
  const o = make(q.length),
    lse = make(data.seqLen * data.heads);
  const dq = make(q.length),
    dk = make(k.length),
    dv = make(k.length);
  await native().naiveAttentionForward(dims, 'causal', q, k, v, o, lse);
  await native().naiveAttentionBackward(dims, 'causal', q, k, v, dout, dq, dk, dv);
  return { o, lse, dq, dk, dv };
}

function maxError(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(a[i]! - ref[i]!));
  return m;
}

const references = new Map<string, Promise<{ f64: Outputs; f32: Outputs }>>();
function reference(data: RingCase) {
  const key = JSON.stringify(data);
  if (!references.has(key)) {
    references.set(
      key,
      (async () => ({
        f64: await naive(
          data,
          (n) => new Float64Array(n),
          (a) => a,
        ),
        f32: await naive(
          data,
          (n) => new Float32Array(n),
          (a) => Float32Array.from(a),
        ),
      }))(),
    );
  }
  return references.get(key)!;
}

async function checkRule(t: ExecutionContext, data: RingCase, ring: Gathered): Promise<void> {
  const { f64, f32 } = await reference(data);
  for (const name of ['o', 'lse', 'dq', 'dk', 'dv'] as const) {
    const ringError = maxError(ring[name], f64[name]);
    const naiveError = maxError(f32[name], f64[name]);
    // An absolute floor only matters when the naive float32 error happens to be exactly 0.
    const bound = Math.max(2 * naiveError, 1e-6);
    t.true(
      ringError <= bound,
      `${name}: ring error ${ringError.toExponential(2)} > 2 × naive float32 error ${naiveError.toExponential(2)}`,
    );
  }
}

const gqa: RingCase = { seqLen: 384, heads: 4, kvHeads: 2, headDim: 32, seed: 11 };
const mha: RingCase = { seqLen: 256, heads: 2, kvHeads: 2, headDim: 16, seed: 12 };

for (const world of [1, 2, 4, 8]) {
  for (const [name, data] of [
    ['GQA', gqa],
    ['MHA', mha],
  ] as const) {
    test(`zigzag ring on ${world} rank${world > 1 ? 's' : ''} equals full attention (${name})`, async (t) => {
      await checkRule(t, data, await runRing(t, data, world, 'zigzag'));
    });
  }
}

test('contiguous sharding is exact too (the benchmark compares it with zigzag)', async (t) => {
  await checkRule(t, gqa, await runRing(t, gqa, 4, 'contiguous'));
});

test('bad shapes fail with a clear message before anything runs', async (t) => {
  const addon = native();
  const dims = { heads: 4, kvHeads: 3, headDim: 8 };
  const arr = (n: number) => new Float32Array(n);
  await t.throwsAsync(
    addon.ringAttention(null, dims, 4, arr(4 * 32), arr(4 * 24), arr(4 * 24), arr(4 * 32)),
    {
      message: /heads \(4\) must be divisible by kv_heads \(3\)/,
    },
  );
  const ok = { heads: 2, kvHeads: 1, headDim: 8 };
  await t.throwsAsync(addon.ringAttention(null, ok, 5, arr(5 * 16), arr(5 * 8), arr(5 * 8), arr(5 * 16)), {
    message: /two equal chunks.*got 5/,
  });
  // Argument sizes are checked at the call, before any work is queued.
  t.throws(() => void addon.ringAttention(null, ok, 4, arr(3), arr(4 * 8), arr(4 * 8), arr(4 * 16)), {
    message: /q has 3 values, expected 64/,
  });
  t.throws(() => shardPositions(100, 8, 0, 'zigzag'), {
    message: /100 is not divisible by 2 × 8 ranks = 16/,
  });
});

test('a rank that dies mid-ring makes the others fail within the timeout, never hang', async (t) => {
  const started = Date.now();
  // 5 s: the four processes must first all meet (a loaded 2-core CI machine once took over 2 s).
  const group = startRing(t, gqa, 4, 'zigzag', { timeoutMs: 5000 }, 2);
  const exits = await group.exited();
  const elapsed = Date.now() - started;
  t.is(exits[2]!.code, 3);
  for (const exit of exits.filter((e) => e.rank !== 2)) {
    const r = exit.messages.find((m) => m.done === true) as Report | undefined;
    t.false(r?.ok ?? true, `rank ${exit.rank} did not report a failure`);
    t.regex(r?.error ?? '', /rank|peer|timed out|closed/i);
  }
  t.true(elapsed < 15_000, `ranks took ${elapsed} ms to give up`);
});
