// One rank of the training benchmark (bench/train.ts): `node train-rank.js '<json TrainBenchJob>'`.
// Builds the real trainer (with a gloo communicator when world > 1: zigzag ring attention), runs
// warm-up steps, then times each of the measured steps: wall seconds, this process's CPU seconds
// (every thread: the trainer's pool thread, gloo's, Node's), and what the trainer says it spent.
// One step = one micro-batch of seqLen tokens (this rank's zigzag shard of it) + the optimizer.
import '../../worker-native/comm.js';
import { exitWithParent, finish, report } from '../../worker-native/host/rank-processes.js';
import type { Qwen2Config } from '../../worker-native/model.js';
import { native } from '../../worker-native/native.js';
import { createTrainer } from '../../worker-native/trainer.js';
import { zigzagPositions } from '../../core/zigzag.js';

export interface TrainBenchJob {
  rank: number;
  world: number;
  /** Rendezvous Redis (world > 1 only). */
  redisPort?: number;
  prefix: string;
  config: Qwen2Config;
  seqLen: number;
  warmupSteps: number;
  timedSteps: number;
}

/** One timed step as this rank saw it. */
export interface TrainBenchStep {
  wallSeconds: number;
  cpuSeconds: number;
  computeSeconds: number;
  commWaitSeconds: number;
  optimizerSeconds: number;
  bytesSent: number;
}

export interface TrainBenchReport {
  done: true;
  ok: boolean;
  error?: string;
  rank: number;
  steps: TrainBenchStep[];
  /** Wall seconds from the barrier before the first timed step to the end of the last. */
  windowSeconds: number;
  windowCpuSeconds: number;
  devicePeakBytes: number;
}

/** A deterministic token stream (every rank generates the same sequence, then takes its shard). */
function tokens(n: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function main(): Promise<void> {
  exitWithParent();
  const job = JSON.parse(process.argv[2] ?? '{}') as TrainBenchJob;
  const addon = native();
  addon.setBlasThreads(1);
  const comm =
    job.world > 1
      ? await addon.createCommunicator({
          rank: job.rank,
          size: job.world,
          redisPort: job.redisPort ?? 0,
          prefix: job.prefix,
          timeoutMs: 600_000,
        })
      : null;
  const trainer = await createTrainer(comm, {
    config: job.config,
    seed: 1,
    deviceBudgetBytes: 16 * 2 ** 30,
    hostBudgetBytes: 16 * 2 ** 30,
    activationCheckpointing: 'none',
    offload: 'none',
    optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01, gradClip: 1.0 },
  });
  const positions = zigzagPositions(job.seqLen, job.world, job.rank);
  const micro = async (index: number) => {
    const stream = tokens(job.seqLen + 1, job.config.vocab_size, 1000 + index);
    const ids = Int32Array.from(positions, (p) => stream[p]!);
    const labels = Int32Array.from(positions, (p) => stream[p + 1]!);
    const r = await trainer.accumulate(ids, positions, labels, 1);
    const s = await trainer.step(1e-4);
    return { r, s };
  };
  for (let i = 0; i < job.warmupSteps; i++) await micro(i);
  await comm?.barrier();
  trainer.resetPeak();
  const steps: TrainBenchStep[] = [];
  const windowStart = performance.now();
  const windowCpu = cpuSeconds();
  for (let i = 0; i < job.timedSteps; i++) {
    const wall = performance.now();
    const cpu = cpuSeconds();
    const { r, s } = await micro(job.warmupSteps + i);
    steps.push({
      wallSeconds: (performance.now() - wall) / 1000,
      cpuSeconds: cpuSeconds() - cpu,
      computeSeconds: r.computeSeconds,
      commWaitSeconds: r.commWaitSeconds + s.commWaitSeconds,
      optimizerSeconds: s.optimizerSeconds,
      bytesSent: r.bytesSent,
    });
  }
  const windowSeconds = (performance.now() - windowStart) / 1000;
  const windowCpuSeconds = cpuSeconds() - windowCpu;
  const devicePeakBytes = trainer.memory().devicePeak;
  trainer.close();
  await comm?.close();
  report({
    done: true,
    ok: true,
    rank: job.rank,
    steps,
    windowSeconds,
    windowCpuSeconds,
    devicePeakBytes,
  } satisfies TrainBenchReport);
  finish(0);
}

main().catch((err: unknown) => {
  report({ done: true, ok: false, error: err instanceof Error ? err.message : String(err) });
  finish(1);
});
