// `npm run bench -- train --json [--seq 2048,8192] [--ranks 1,8] [--steps 3]`: training throughput
// of the `small` preset (4 layers, hidden 256, 4 heads over 2 KV heads, intermediate 688, byte
// vocabulary 259) with the real native trainer — one micro-batch of S tokens + AdamW per step, no
// activation checkpointing, fp32 — on one rank, and on N = 8 rank processes (zigzag ring
// attention, gloo over loopback, rendezvous on an embedded Redis). Each configuration runs one
// warm-up step, then `--steps` timed steps. Single-thread sgemm (2048³, native measureSgemm) is
// measured in the same run as the machine's reference rate.
//
// Model FLOPs per step come from orchestrator/plan/flops.ts (trainingFlopsPerStep: 6 FLOPs per
// matmul weight per token plus causal attention, no recomputation counted). Metrics, per S and N:
//   tokens_per_s          S × steps ÷ wall seconds of the timed steps (the slowest rank's window).
//                         Wall time on this machine: N ranks share the cores, and other jobs too.
//   tokens_per_cpu_s      S × steps ÷ Σ over ranks of process CPU seconds in that window (every
//                         thread: trainer, gloo, Node). What the work costs, whatever the sharing.
//   mfu_vs_sgemm_wall     (model FLOPs ÷ wall s) ÷ (cores used × sgemm FLOP/s), cores used =
//                         min(N, cores of the machine): the fraction of the cores' sgemm rate the
//                         step achieved in wall time (low when other jobs take cores from us).
//   mfu_vs_sgemm_cpu      (model FLOPs ÷ Σ CPU s) ÷ sgemm FLOP/s: per core actually used; the
//                         figure that would hold with one core per rank.
//   step_seconds          median wall seconds of a timed step.
//   comm_wait_fraction    Σ ranks' seconds blocked on the ring and collectives ÷ Σ ranks' step
//                         wall seconds (with 8 ranks on 2 cores, mostly waiting for a descheduled
//                         peer rather than for bytes).
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

import { startEmbeddedRedis, type EmbeddedRedis } from '../cluster/embedded-redis.js';
import { trainingFlopsPerStep } from '../orchestrator/plan/flops.js';
import { MODEL_PRESETS } from '../core/model-config.js';
import { RankGroup } from '../worker-native/host/rank-processes.js';
import { native } from '../worker-native/native.js';
import type { TrainBenchJob, TrainBenchReport } from './ranks/train-rank.js';
import type { Emit } from './run.js';

const PRESET = 'small';
const WARMUP_STEPS = 1;

function option(args: string[], name: string, fallback: string): number[] {
  const at = args.indexOf(name);
  const text = at >= 0 ? args[at + 1] : fallback;
  const values = (text ?? fallback).split(',').map(Number);
  for (const v of values) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be positive integers, got '${text}'`);
  }
  return values;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function runRanks(
  redis: EmbeddedRedis,
  world: number,
  seqLen: number,
  timedSteps: number,
): Promise<TrainBenchReport[]> {
  const script = fileURLToPath(new URL('./ranks/train-rank.js', import.meta.url));
  const prefix = `longctx/bench-train-${process.pid}-${seqLen}-${world}/1`;
  const group = new RankGroup({
    script,
    ranks: [...Array(world).keys()],
    args: (rank) => [
      JSON.stringify({
        rank,
        world,
        redisPort: redis.port,
        prefix,
        config: MODEL_PRESETS[PRESET]!,
        seqLen,
        warmupSteps: WARMUP_STEPS,
        timedSteps,
      } satisfies TrainBenchJob),
    ],
  });
  try {
    const reports: TrainBenchReport[] = [];
    for (const exit of await group.exited()) {
      const r = exit.messages.find((m) => m.done === true) as TrainBenchReport | undefined;
      if (!r?.ok) throw new Error(`train bench rank ${exit.rank} failed: ${r?.error ?? exit.stderr}`);
      reports.push(r);
    }
    return reports;
  } finally {
    await group.stop();
  }
}

export async function run(emit: Emit, args: string[]): Promise<void> {
  const seqs = option(args, '--seq', '2048,8192');
  const worlds = option(args, '--ranks', '1,8');
  const [timedSteps] = option(args, '--steps', '3');
  const config = MODEL_PRESETS[PRESET]!;
  const cores = cpus().length;
  const addon = native();
  addon.setBlasThreads(1);
  const sgemm = await addon.measureSgemm(2048, 5);
  const sgemmFlops = sgemm.gflops * 1e9;
  emit({
    bench: 'train',
    metric: 'sgemm_gflops',
    value: Number(sgemm.gflops.toPrecision(4)),
    unit: 'GFLOP/s',
    n: 2048,
    threads: 1,
    cores,
    load1: Number(loadavg()[0]!.toFixed(2)),
  });
  const redis = await startEmbeddedRedis();
  try {
    for (const seqLen of seqs) {
      for (const world of worlds) {
        const load1 = Number(loadavg()[0]!.toFixed(2));
        const reports = await runRanks(redis, world, seqLen, timedSteps!);
        const steps = reports[0]!.steps.length;
        const flops = trainingFlopsPerStep(config, seqLen, 1) * steps;
        const wall = Math.max(...reports.map((r) => r.windowSeconds));
        const cpu = sum(reports.map((r) => r.windowCpuSeconds));
        const coresUsed = Math.min(world, cores);
        // A step ends when its slowest rank ends; the ranks move in lockstep through the collectives.
        const stepWalls = reports[0]!.steps.map((_, i) =>
          Math.max(...reports.map((r) => r.steps[i]!.wallSeconds)),
        );
        const waited = sum(reports.flatMap((r) => r.steps.map((s) => s.commWaitSeconds)));
        const stepped = sum(reports.flatMap((r) => r.steps.map((s) => s.wallSeconds)));
        const extra = {
          preset: PRESET,
          seq_len: seqLen,
          ranks: world,
          cores_used: coresUsed,
          steps,
          load1,
          device_peak_bytes: Math.max(...reports.map((r) => r.devicePeakBytes)),
        };
        const metrics: [string, number, string][] = [
          ['tokens_per_s', (seqLen * steps) / wall, 'tokens/s'],
          ['tokens_per_cpu_s', (seqLen * steps) / cpu, 'tokens/CPU-s'],
          ['mfu_vs_sgemm_wall', flops / wall / (coresUsed * sgemmFlops), 'ratio'],
          ['mfu_vs_sgemm_cpu', flops / cpu / sgemmFlops, 'ratio'],
          ['step_seconds', median(stepWalls), 's'],
          ['comm_wait_fraction', waited / stepped, 'fraction'],
        ];
        for (const [metric, value, unit] of metrics) {
          emit({ bench: 'train', metric, value: Number(value.toPrecision(4)), unit, ...extra });
        }
      }
    }
  } finally {
    await redis.stop();
  }
}
