// A trainer test job, run the same way by a rank process (rank-main.ts) and in the test process
// (the one-rank baseline): perturb the initial parameters, then accumulate and step on this rank's
// zigzag shard of generated sequences.
import type { ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';

import { RankGroup } from '../../worker-native/host/rank-processes.js';
import type { Trainer, TrainerOptions } from '../../worker-native/trainer.js';
import { perturbParameters, rankTokens, sequence } from './fixtures.js';

export interface TrainerRankJob {
  rank: number;
  world: number;
  redisPort: number;
  prefix: string;
  timeoutMs: number;
  options: TrainerOptions;
  seqLen: number;
  /** Micro-batch i of the run is sequence(dataSeed, i, seqLen, vocab). */
  dataSeed: number;
  /**
   * 'gradients': one micro-batch, then reduceGradients(), and report the summed gradients.
   * 'train': `steps` steps of `accumulation` micro-batches at `lr`, and report the final state.
   */
  mode: 'gradients' | 'train';
  steps: number;
  accumulation: number;
  lr: number;
  /** This rank passes its shard without its last two tokens (the mismatch test). */
  shortRank?: number;
  /** Each rank trains on CUDA device `rank` instead of options.device (one rank per GPU). */
  gpuPerRank?: boolean;
}

export interface TrainerRankReport {
  done: true;
  ok: boolean;
  error?: string;
  rank: number;
  shard: { begin: number; end: number };
  lossSums: number[];
  globalLossSums: number[];
  globalTokens: number[];
  bytesSent: number;
  /** What the trainer's device memory travels over (CUDA ranks), as Trainer.collectives says. */
  collectives?: string;
  /** 'gradients' mode: evaluate()'s global loss sum of the micro-batch, before accumulating it. */
  evalGlobalLossSum?: number;
  gradients?: number[];
  params?: number[];
  expAvg?: number[];
  expAvgSq?: number[];
  adamStep?: number;
}

export async function runTrainerJob(
  trainer: Trainer,
  job: Pick<
    TrainerRankJob,
    | 'world'
    | 'rank'
    | 'options'
    | 'seqLen'
    | 'dataSeed'
    | 'mode'
    | 'steps'
    | 'accumulation'
    | 'lr'
    | 'shortRank'
  >,
): Promise<TrainerRankReport> {
  perturbParameters(trainer);
  const out: TrainerRankReport = {
    done: true,
    ok: true,
    rank: job.rank,
    shard: trainer.shard,
    lossSums: [],
    globalLossSums: [],
    globalTokens: [],
    bytesSent: 0,
  };
  const vocab = job.options.config.vocab_size;
  const steps = job.mode === 'gradients' ? 1 : job.steps;
  const accumulation = job.mode === 'gradients' ? 1 : job.accumulation;
  for (let s = 0; s < steps; s++) {
    for (let m = 0; m < accumulation; m++) {
      const x = rankTokens(
        sequence(job.dataSeed, s * accumulation + m, job.seqLen, vocab),
        job.world,
        job.rank,
      );
      if (job.shortRank === job.rank) {
        x.ids = x.ids.subarray(2);
        x.positions = x.positions.subarray(2);
        x.labels = x.labels.subarray(2);
      }
      if (job.mode === 'gradients')
        out.evalGlobalLossSum = (await trainer.evaluate(x.ids, x.positions, x.labels)).globalLossSum;
      const r = await trainer.accumulate(x.ids, x.positions, x.labels, accumulation);
      out.lossSums.push(r.lossSum);
      out.globalLossSums.push(r.globalLossSum);
      out.globalTokens.push(r.globalTokens);
      out.bytesSent += r.bytesSent;
    }
    if (job.mode === 'train') await trainer.step(job.lr);
  }
  if (job.mode === 'gradients') {
    await trainer.reduceGradients();
    out.gradients = Array.from(trainer.gradients());
  } else {
    const state = trainer.snapshot();
    out.params = Array.from(state.params);
    out.expAvg = Array.from(state.expAvg);
    out.expAvgSq = Array.from(state.expAvgSq);
    out.adamStep = state.adamStep;
  }
  return out;
}

/** What a test chooses of a job; the rank processes fill in who they are and where they meet. */
export type TrainerJob = Pick<
  TrainerRankJob,
  'options' | 'seqLen' | 'dataSeed' | 'mode' | 'steps' | 'accumulation' | 'lr' | 'gpuPerRank'
>;

const RANK_MAIN = fileURLToPath(new URL('./rank-main.js', import.meta.url));

/**
 * Runs the job on `world` rank processes (rank-main.ts) that meet through the Redis at `redisPort`
 * under `prefix`; returns their reports in rank order, or throws naming the rank that failed.
 */
export async function runOnRankProcesses(
  t: ExecutionContext,
  job: TrainerJob,
  where: { world: number; redisPort: number; prefix: string; timeoutMs: number },
): Promise<TrainerRankReport[]> {
  const { world } = where;
  const group = new RankGroup({
    script: RANK_MAIN,
    ranks: [...Array(world).keys()],
    args: (rank) => [JSON.stringify({ ...job, ...where, rank } satisfies TrainerRankJob)],
  });
  t.teardown(() => group.stop());
  return (await group.exited()).map((exit) => {
    const r = exit.messages.find((m) => m.done === true) as TrainerRankReport | undefined;
    if (!r?.ok)
      throw new Error(`rank ${exit.rank} failed (${exit.code ?? exit.signal}): ${r?.error ?? exit.stderr}`);
    return r;
  });
}
