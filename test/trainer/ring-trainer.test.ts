// The trainer across real rank processes (gloo over loopback, rendezvous on a private Redis):
// context parallelism gives the loss and gradients of the whole sequence, and ZeRO-1 training on
// two ranks follows the one-rank run. The rule is flash attention's: a result's error against a
// float64 reference is at most twice the error of the one-rank float32 result.
import test, { type ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';

import { shardRange } from '../../checkpoints/optimizer-shards.js';
import '../../worker-native/kernels.js';
import '../../worker-native/model.js';
import { RankGroup } from '../../worker-native/host/rank-processes.js';
import { native } from '../../worker-native/native.js';
import {
  createTrainer,
  type ActivationCheckpointing,
  type Offload,
  type ParameterView,
  type TrainerOptions,
} from '../../worker-native/trainer.js';
import { maxAbsError, random } from '../kernels/numeric.js';
import { useRedis } from '../helpers/redis.js';
import { bitwiseEqual, IGNORE, sequence, tinyConfig, trainerOptions } from './fixtures.js';
import { runOnRankProcesses, runTrainerJob, type TrainerJob, type TrainerRankReport } from './job.js';

native().setBlasThreads(1);
const redis = useRedis(test);
const rankMain = fileURLToPath(new URL('./rank-main.js', import.meta.url));
let prefixes = 0;

type Job = TrainerJob;

/** Runs the job on `world` rank processes; returns their reports in rank order. */
function onRanks(t: ExecutionContext, world: number, job: Job): Promise<TrainerRankReport[]> {
  const prefix = `longctx/trainer-test-${process.pid}-${prefixes++}/1`;
  return runOnRankProcesses(t, job, { world, redisPort: redis().port, prefix, timeoutMs: 30_000 });
}

/** The same job on one rank, in this process. */
async function onOneRank(job: Job): Promise<{ report: TrainerRankReport; views: ParameterView[] }> {
  const trainer = await createTrainer(null, job.options);
  const report = await runTrainerJob(trainer, { ...job, world: 1, rank: 0 });
  const views = trainer.parameterViews();
  trainer.close();
  return { report, views };
}

/** The parameters every job starts from: the seed's init, perturbed as runTrainerJob does. */
async function initialParameters(options: TrainerOptions): Promise<Float32Array> {
  const trainer = await createTrainer(null, options);
  await runTrainerJob(trainer, {
    options,
    world: 1,
    rank: 0,
    seqLen: 2,
    dataSeed: 0,
    mode: 'train',
    steps: 0,
    accumulation: 1,
    lr: 0,
  });
  const { params } = trainer.snapshot();
  trainer.close();
  return params;
}

const f32 = (a: number[] | undefined) => Float32Array.from(a ?? []);
const positionsOf = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
const counted = (labels: Int32Array) => labels.filter((l) => l !== IGNORE).length;

/** The spacing of float32 numbers at x. */
function ulp32(x: number): number {
  return 2 ** (Math.floor(Math.log2(Math.abs(x))) - 23);
}

/** The rule, with a floor that only matters where the one-rank error happens to be 0. */
function checkRule(t: ExecutionContext, what: string, error: number, baseline: number, floor: number): void {
  t.true(
    error <= Math.max(2 * baseline, floor),
    `${what}: error ${error.toExponential(2)} > 2 × one-rank error ${baseline.toExponential(2)}`,
  );
}

test('a 2-layer model on 4 ranks has the loss and parameter gradients of 1 rank, within the rule', async (t) => {
  const job: Job = {
    options: trainerOptions(tinyConfig(2)),
    seqLen: 128,
    dataSeed: 21,
    mode: 'gradients',
    steps: 1,
    accumulation: 1,
    lr: 0,
  };
  const ranks = await onRanks(t, 4, job);
  const { report: one, views } = await onOneRank(job);

  // Every rank holds bitwise the same summed gradients (the all-reduce broadcasts one sum).
  const g4 = f32(ranks[0]!.gradients);
  for (const r of ranks) t.true(bitwiseEqual(f32(r.gradients), g4), `rank ${r.rank} gradients`);
  t.true(ranks.every((r) => r.bytesSent > 0));
  // evaluate() is the same forward: the same global loss, bit for bit.
  t.true(ranks.every((r) => r.evalGlobalLossSum === r.globalLossSums[0]));
  // The whole sequence's loss: the ranks' label counts and loss sums add up to the one-rank ones.
  const global = ranks[0]!;
  t.is(global.globalTokens[0], one.globalTokens[0]);
  const lossSum4 = ranks.reduce((sum, r) => sum + r.lossSums[0]!, 0);
  t.true(Math.abs(lossSum4 - global.globalLossSums[0]!) < 1e-9 * lossSum4);

  // The float64 reference model over the whole sequence, from the same (perturbed) parameters.
  const params = await initialParameters(job.options);
  const seq = sequence(job.dataSeed, 0, job.seqLen, job.options.config.vocab_size);
  const g64 = new Float64Array(params.length);
  const ref = await native().referenceQwen2ForwardBackward(
    job.options.config,
    Float64Array.from(params),
    seq.ids,
    positionsOf(job.seqLen),
    seq.labels,
    1 / counted(seq.labels),
    g64,
  );
  t.is(ref.count, one.globalTokens[0]!);
  const refLoss = ref.lossSum / ref.count;
  const loss1 = one.globalLossSums[0]! / one.globalTokens[0]!;
  const loss4 = global.globalLossSums[0]! / global.globalTokens[0]!;
  const g1 = f32(one.gradients);
  const e1 = maxAbsError(g1, g64);
  const e4 = maxAbsError(g4, g64);
  t.log(
    `loss: ref ${refLoss}, 1 rank error ${Math.abs(loss1 - refLoss).toExponential(2)}, 4 ranks error ${Math.abs(loss4 - refLoss).toExponential(2)}`,
  );
  t.log(
    `gradients (max |g| ${Math.max(...g64.map(Math.abs)).toFixed(3)}): 1 rank error ${e1.toExponential(2)}, 4 ranks error ${e4.toExponential(2)}`,
  );
  // The losses are means of float32 per-token losses: the floor is one float32 ulp of the loss.
  checkRule(t, 'loss', Math.abs(loss4 - refLoss), Math.abs(loss1 - refLoss), ulp32(refLoss));
  checkRule(t, 'gradients', e4, e1, 1e-7);
  // Tensor by tensor too: no part of the model may hide a larger error behind the maximum.
  for (const v of views) {
    const part = (a: Float32Array | Float64Array) => a.subarray(v.offset, v.offset + v.numel);
    checkRule(t, v.name, maxAbsError(part(g4), part(g64)), maxAbsError(part(g1), part(g64)), 1e-8);
  }
});

/**
 * The float64 reference of a training run: the reference model's gradients of each micro-batch
 * over the whole sequence, summed with the trainer's scaling, clipped by the global norm, and the
 * textbook AdamW in float64 with weight decay per view.
 */
async function referenceTraining(
  job: Job,
  start: Float32Array,
  views: ParameterView[],
): Promise<{ params: Float64Array; expAvg: Float64Array; expAvgSq: Float64Array }> {
  const { config, optimizer } = job.options;
  const n = start.length;
  const params = Float64Array.from(start);
  const expAvg = new Float64Array(n);
  const expAvgSq = new Float64Array(n);
  for (let s = 0; s < job.steps; s++) {
    const grads = new Float64Array(n);
    for (let m = 0; m < job.accumulation; m++) {
      const seq = sequence(job.dataSeed, s * job.accumulation + m, job.seqLen, config.vocab_size);
      const part = new Float64Array(n);
      const scale = 1 / (counted(seq.labels) * job.accumulation);
      await native().referenceQwen2ForwardBackward(
        config,
        params,
        seq.ids,
        positionsOf(job.seqLen),
        seq.labels,
        scale,
        part,
      );
      for (let i = 0; i < n; i++) grads[i]! += part[i]!;
    }
    const norm = Math.sqrt(grads.reduce((sum, g) => sum + g * g, 0));
    const clip = optimizer.gradClip > 0 ? Math.min(1, optimizer.gradClip / (norm + 1e-6)) : 1;
    for (let i = 0; i < n; i++) grads[i]! *= clip;
    for (const v of views) {
      const at = (a: Float64Array) => a.subarray(v.offset, v.offset + v.numel);
      await native().naiveAdamwUpdate(
        {
          lr: job.lr,
          beta1: optimizer.beta1,
          beta2: optimizer.beta2,
          eps: optimizer.eps,
          weightDecay: v.weightDecay ? optimizer.weightDecay : 0,
        },
        s + 1,
        at(params),
        at(grads),
        at(expAvg),
        at(expAvgSq),
      );
    }
  }
  return { params, expAvg, expAvgSq };
}

test('ZeRO-1 on 2 ranks trains like 1 rank within the rule; its optimizer shards make up the one-rank state', async (t) => {
  // eps 1e-6, not 1e-8: Adam's first steps move each weight by about lr·g/(|g| + eps), so with a
  // tiny eps a weight whose true gradient is within float32 noise of zero moves by a random
  // fraction of lr in ANY float32 run, and the maximum error measures that lottery, not accuracy.
  // With eps = 1e-6 a gradient error δ moves a weight by at most lr·δ/eps: the comparison stays
  // well-conditioned and the rule meaningful.
  const base = trainerOptions(tinyConfig(2));
  const job: Job = {
    options: { ...base, optimizer: { ...base.optimizer, eps: 1e-6 } },
    seqLen: 64,
    dataSeed: 31,
    mode: 'train',
    steps: 3,
    accumulation: 2,
    lr: 1e-3,
  };
  const ranks = await onRanks(t, 2, job);
  const { report: one, views } = await onOneRank(job);
  const P = one.params!.length;

  // Each rank owns shardRange's part of the moments; together they have the one-rank shape.
  ranks.forEach((r, rank) => {
    const [begin, end] = shardRange(P, 2, rank);
    t.deepEqual(r.shard, { begin, end });
    t.is(r.expAvg!.length, end - begin);
    t.is(r.adamStep, 3);
  });
  const expAvg2 = f32([...ranks[0]!.expAvg!, ...ranks[1]!.expAvg!]);
  const expAvgSq2 = f32([...ranks[0]!.expAvgSq!, ...ranks[1]!.expAvgSq!]);
  t.is(expAvg2.length, one.expAvg!.length);
  // The all-gather leaves bitwise the same parameters on every rank.
  const params2 = f32(ranks[0]!.params);
  t.true(bitwiseEqual(f32(ranks[1]!.params), params2));

  const ref = await referenceTraining(job, await initialParameters(job.options), views);
  const pairs: [string, Float32Array, Float32Array, Float64Array][] = [
    ['parameters', params2, f32(one.params), ref.params],
    ['exp_avg', expAvg2, f32(one.expAvg), ref.expAvg],
    ['exp_avg_sq', expAvgSq2, f32(one.expAvgSq), ref.expAvgSq],
  ];
  for (const [name, two, single, want] of pairs) {
    const e2 = maxAbsError(two, want);
    const e1 = maxAbsError(single, want);
    t.log(`${name}: 1 rank error ${e1.toExponential(2)}, 2 ranks error ${e2.toExponential(2)}`);
    checkRule(t, name, e2, e1, 1e-9);
  }
  // The training moved the parameters far more than the errors.
  t.true(
    maxAbsError(ref.params, await initialParameters(job.options)) > 100 * maxAbsError(params2, ref.params),
  );
});

test('under the ring, every checkpointing policy and offload mode trains bitwise alike', async (t) => {
  // Full recomputation runs the ring again in the backward; selective must not, and neither may
  // change a bit. Two steps of two micro-batches on 2 ranks, each run with a different pairing.
  const base = trainerOptions(tinyConfig(2));
  const job = (activationCheckpointing: ActivationCheckpointing, offload: Offload): Job => ({
    options: { ...base, activationCheckpointing, offload },
    seqLen: 64,
    dataSeed: 41,
    mode: 'train',
    steps: 2,
    accumulation: 2,
    lr: 1e-2,
  });
  const [baseline, ...others] = [
    await onRanks(t, 2, job('none', 'none')),
    await onRanks(t, 2, job('full', 'optimizer')),
    await onRanks(t, 2, job('selective', 'params+optimizer')),
    await onRanks(t, 2, job('every-2', 'none')),
  ];
  for (const [i, run] of others.entries()) {
    for (const rank of [0, 1]) {
      const [got, want] = [run[rank]!, baseline[rank]!];
      t.deepEqual(got.lossSums, want.lossSums, `run ${i + 1} rank ${rank} losses`);
      for (const field of ['params', 'expAvg', 'expAvgSq'] as const)
        t.true(bitwiseEqual(f32(got[field]), f32(want[field])), `run ${i + 1} rank ${rank} ${field}`);
    }
  }
  // Recomputing the whole layer sends the ring's blocks again; selective recomputation does not.
  const sent = (run: TrainerRankReport[]) => run[0]!.bytesSent;
  t.true(sent(others[0]) > sent(baseline), 'full recomputation reruns the ring');
  t.is(sent(others[1]), sent(baseline), 'selective recomputation never reruns the ring');
});

test('ranks that pass different token counts all fail at once, naming the counts, instead of hanging', async (t) => {
  const base = trainerOptions(tinyConfig(2));
  const job: Job = {
    options: base,
    seqLen: 64,
    dataSeed: 51,
    mode: 'train',
    steps: 1,
    accumulation: 1,
    lr: 0,
  };
  const prefix = `longctx/trainer-test-${process.pid}-${prefixes++}/1`;
  const group = new RankGroup({
    script: rankMain,
    ranks: [0, 1],
    args: (rank) => [
      JSON.stringify({
        ...job,
        rank,
        world: 2,
        redisPort: redis().port,
        prefix,
        timeoutMs: 30_000,
        shortRank: 1,
      }),
    ],
  });
  t.teardown(() => group.stop());
  const exits = await group.exited();
  for (const exit of exits) {
    const r = exit.messages.find((m) => m.done === true) as TrainerRankReport | undefined;
    t.false(r?.ok ?? true, `rank ${exit.rank} did not fail`);
    t.regex(
      r?.error ?? '',
      /the ranks passed different token counts \(this rank (32|30), 62 in all over 2 ranks\)/,
    );
  }
});

test('AdamW is elementwise: a shard boundary anywhere changes no bit (why ZeRO-1 is exact for any world size)', async (t) => {
  const n = 1001;
  const rand = random(3);
  const make = () => Float32Array.from({ length: n }, () => rand());
  const [params, grads, m, v] = [make(), make(), make(), make().map(Math.abs)];
  const whole = [params, m, v].map((a) => a.slice());
  const hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  await native().adamwUpdate(hyper, 7, whole[0]!, grads, whole[1]!, whole[2]!);
  for (const cut of [1, 333, 500, 999]) {
    const split = [params, m, v].map((a) => a.slice());
    for (const [b, e] of [
      [0, cut],
      [cut, n],
    ] as const) {
      const part = (a: Float32Array) => a.subarray(b, e);
      await native().adamwUpdate(hyper, 7, part(split[0]!), part(grads), part(split[1]!), part(split[2]!));
    }
    t.true(
      split.every((a, i) => bitwiseEqual(a, whole[i]!)),
      `cut at ${cut}`,
    );
  }
});
