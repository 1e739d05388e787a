// Several ranks on one GPU: rank processes (gloo over loopback, rendezvous on a private Redis) each
// train on CUDA device 0, their zigzag ring's K/V and dK/dV staged through pinned host memory
// (ring/cuda_ring_attention.h; NCCL refuses ranks that share a device). On hosts with 2+ GPUs and
// NCCL, also one rank per GPU over NCCL. 2 and 4 ranks give the loss and the summed gradients of the whole
// sequence under the bf16 rule (reference.ts) as 1 rank does, and two ZeRO-1 steps on 2 ranks end
// near the one-rank weights. Needs a GPU (and redis-server, for the rendezvous).
import test, { type ExecutionContext } from 'ava';

import { startEmbeddedRedis } from '../../cluster/embedded-redis.js';
import '../../worker-native/model.js';
import { native } from '../../worker-native/native.js';
import { createTrainer, type TrainerOptions } from '../../worker-native/trainer.js';
import { sequence, trainerOptions } from '../trainer/fixtures.js';
import {
  runOnRankProcesses,
  runTrainerJob,
  type TrainerJob,
  type TrainerRankReport,
} from '../trainer/job.js';
import { api, devices, gpuTest } from './gpu.js';
import { assertBf16Rule, toBf16 } from './reference.js';

const SEQ = 512; // 4 ranks: 8 zigzag chunks of 64 tokens
const DATA_SEED = 4;
/** Of the weights, at most this fraction may move the other way after two ZeRO-1 steps (below). */
const FLIPPED_AT_MOST = 0.02;

/** head_dim 64 (the flash kernels'), GQA 2/1, two layers. */
const options: TrainerOptions = trainerOptions(
  {
    hidden_size: 128,
    intermediate_size: 256,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    num_hidden_layers: 2,
    vocab_size: 256,
    rope_theta: 1e6,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
  },
  {
    device: 'cuda:0',
    deviceBudgetBytes: 256 * 2 ** 20,
    hostBudgetBytes: 256 * 2 ** 20,
    initializerRange: 0.1,
  },
);

type Job = TrainerJob;

async function onRanks(t: ExecutionContext, world: number, job: Job): Promise<TrainerRankReport[]> {
  if (world === 1) {
    const trainer = await createTrainer(null, job.options);
    try {
      return [await runTrainerJob(trainer, { ...job, world: 1, rank: 0 })];
    } finally {
      trainer.close();
    }
  }
  const redis = await startEmbeddedRedis();
  t.teardown(() => redis.stop());
  const prefix = `longctx/cuda-ring-test-${process.pid}-${world}-${job.mode}/1`;
  return runOnRankProcesses(t, job, { world, redisPort: redis.port, prefix, timeoutMs: 60_000 });
}

/** The parameters every job starts from (the seed's init, perturbed as runTrainerJob does). */
async function initialParameters(): Promise<Float32Array> {
  const trainer = await createTrainer(null, options);
  try {
    const job = { options, world: 1, rank: 0, seqLen: 2, dataSeed: 0, mode: 'train', steps: 0 } as const;
    await runTrainerJob(trainer, { ...job, accumulation: 1, lr: 0 });
    return trainer.snapshot().params;
  } finally {
    trainer.close();
  }
}

/** The loss and summed gradients of the whole sequence, in float64 and naively in bf16. */
async function wholeSequenceTruth() {
  const params = await initialParameters();
  const { ids, labels } = sequence(DATA_SEED, 0, SEQ, options.config.vocab_size);
  const positions = Int32Array.from({ length: SEQ }, (_, i) => i);
  const weights = Float64Array.from(params, toBf16);
  const truthGrads = new Float64Array(params.length);
  const naiveGrads = new Float64Array(params.length);
  const addon = native();
  const count = labels.filter((l) => l !== -100).length;
  const truth = await addon.referenceQwen2ForwardBackward(
    options.config,
    weights,
    ids,
    positions,
    labels,
    1 / count,
    truthGrads,
  );
  const naive = await addon.referenceQwen2ForwardBackward(
    options.config,
    weights,
    ids,
    positions,
    labels,
    1 / count,
    naiveGrads,
    true,
  );
  const views = await (async () => {
    const trainer = await createTrainer(null, options);
    const v = trainer.parameterViews();
    trainer.close();
    return v;
  })();
  return { truth, naive, truthGrads, naiveGrads, views };
}

/** The ranks' loss and summed gradients meet the bf16 rule against the whole sequence's. */
function assertWholeSequence(
  t: ExecutionContext,
  label: string,
  reports: TrainerRankReport[],
  whole: Awaited<ReturnType<typeof wholeSequenceTruth>>,
): void {
  const { truth, naive, truthGrads, naiveGrads, views } = whole;
  const r = reports[0]!;
  t.is(r.globalTokens[0], truth.count, `${label}: counted tokens`);
  assertBf16Rule(t, `${label}: loss`, [r.globalLossSums[0]!], [naive.lossSum], [truth.lossSum]);
  const grads = Float32Array.from(r.gradients!);
  for (const v of views) {
    const at = (a: Float32Array | Float64Array) => a.subarray(v.offset, v.offset + v.numel);
    assertBf16Rule(t, `${label}: ${v.name}`, at(grads), at(naiveGrads), at(truthGrads));
  }
  // Every rank holds the same summed gradients after reduceGradients.
  for (const other of reports.slice(1)) t.deepEqual(other.gradients, r.gradients);
}

const gradientsJob: Job = {
  options,
  seqLen: SEQ,
  dataSeed: DATA_SEED,
  mode: 'gradients',
  steps: 1,
  accumulation: 1,
  lr: 0,
};

gpuTest('2 and 4 ranks on one GPU give the loss and gradients of the whole sequence', async (t) => {
  const whole = await wholeSequenceTruth();
  for (const world of [1, 2, 4]) {
    const reports = await onRanks(t, world, gradientsJob);
    assertWholeSequence(t, `${world} ranks`, reports, whole);
    // Ranks sharing a GPU cannot use NCCL: 'auto' found that out and staged through host memory.
    if (world > 1) for (const r of reports) t.is(r.collectives, 'ranks share a GPU: using gloo host staging');
  }
});

// One rank per GPU over NCCL, against the same ranks staged through gloo: both give the whole
// sequence's loss and gradients (their all-reduces sum in different orders, so not bit for bit).
const ncclRing =
  devices >= 2 && api?.cudaBackendInfo().nccl
    ? gpuTest
    : (title: string) => test.skip(`${title} (skipped: needs 2 GPUs and NCCL)`, () => {});
ncclRing('a 2-rank ring over NCCL, one rank per GPU, matches the gloo-staged ring', async (t) => {
  const whole = await wholeSequenceTruth();
  for (const collectives of ['nccl', 'staged'] as const) {
    const job: Job = { ...gradientsJob, options: { ...options, collectives }, gpuPerRank: true };
    const reports = await onRanks(t, 2, job);
    assertWholeSequence(t, `2 ranks over ${collectives}`, reports, whole);
    const said = reports[0]!.collectives!;
    t.log(`${collectives}: ${said}`);
    t.true(collectives === 'nccl' ? said.startsWith('NCCL ') : said === 'gloo host staging', said);
  }
});

gpuTest('two ZeRO-1 steps on 2 ranks of one GPU end near the one-rank weights', async (t) => {
  const job: Job = {
    options,
    seqLen: SEQ,
    dataSeed: DATA_SEED,
    mode: 'train',
    steps: 2,
    accumulation: 1,
    lr: 1e-3,
  };
  const [one] = await onRanks(t, 1, job);
  const two = await onRanks(t, 2, job);
  // bf16 gradients may flip the sign of the smallest, so a weight may move the other way in both
  // steps. AdamW's first step moves it by at most lr; its second by at most ρ·lr, ρ the largest
  // |m̂|/√v̂ after two gradients (Cauchy–Schwarz over them: ρ ≈ 1.00136 at β 0.9/0.999). The decay
  // terms differ by lr·wd times the first step's difference, ≤ 2·lr: negligible but counted.
  const { beta1: b1, beta2: b2, weightDecay: wd } = options.optimizer;
  const rho = Math.sqrt(
    ((1 - b2 * b2) / (1 - b1 * b1) ** 2) *
      ((b1 * (1 - b1)) ** 2 / (b2 * (1 - b2)) + (1 - b1) ** 2 / (1 - b2)),
  );
  const bound = 2 * job.lr * (1 + rho) + 2 * job.lr * job.lr * wd + 1e-7;
  for (const r of two) {
    t.is(r.adamStep, 2);
    let worst = 0;
    let flipped = 0;
    r.params!.forEach((p, i) => {
      const d = Math.abs(p - one!.params![i]!);
      worst = Math.max(worst, d);
      if (d > job.lr) flipped++;
    });
    const flippedFraction = flipped / r.params!.length;
    t.log(
      `rank ${r.rank}: params differ by at most ${worst.toExponential(4)} (bound ${bound.toExponential(4)}); ` +
        `${(100 * flippedFraction).toFixed(3)}% moved the other way (differ by more than lr)`,
    );
    t.true(worst <= bound, `rank ${r.rank}: params differ by ${worst}, past ${bound}`);
    // The bound above holds for any gradients (AdamW's steps are at most lr): what shows that the
    // ring computed the same gradients is that only the near-zero ones, whose sign bf16 rounding can
    // flip, moved the other way.
    t.true(flippedFraction < FLIPPED_AT_MOST, `rank ${r.rank}: ${flipped} weights moved the other way`);
  }
  t.deepEqual(two[0]!.params, two[1]!.params);
});
