// `npm run bench -- checkpoint --json [--windows 6]`: how fast a checkpoint is written, and how
// much an asynchronous save slows training, with the real writer (checkpoints/ through
// worker-native/host/checkpoint-io.ts saveCheckpoint) and the real training loop
// (worker-native/host/training-loop.ts) driving the real native trainer, on one rank.
//
// Model: a Qwen2 of 25.4M parameters (hidden 768, 12 heads over 4 KV heads, intermediate 2048,
// 4 layers, byte vocabulary 259, tied embeddings): params + both AdamW moments = 305 MB on disk.
// Files go to a temporary folder on the machine's disk (os.tmpdir()), removed at the end.
//
//   save_vs_disk           checkpoint bytes ÷ saveCheckpoint seconds (every file written, hashed
//                          and fsynced, manifest, rename, parent fsync), over the sequential write
//                          bandwidth of the same disk for a file of the same size (64 MiB writes,
//                          then fsync), measured in the same run: best of 5 each, interleaved
//                          (medians in `median_*`). save_mb_per_s also gives the save's CPU seconds.
//   sync_stall_seconds     what a synchronous save stops training for: snapshot(into) + the whole
//                          awaited save (median of the 5 above). `loop_final_save_s`: the loop's
//                          own save after its last step, which it awaits (written in background
//                          mode, so it is slower).
//   async_stall_seconds    what an asynchronous save costs the real loop (its saves: startSnapshot,
//                          then saveCheckpoint in background mode, one thread busy at a time): saves
//                          every k steps (S = 512, one micro-batch per step), k long enough for a
//                          save to end well inside it; per save, Σ over the steps it overlapped (the
//                          step that starts it, then every step that began before it finished) of
//                          (step wall seconds − the median of the run's save-free steps). Blocking
//                          and slowdown from sharing the cores both count. Mean over `--windows`
//                          saves; `stderr_s` is its standard error.
//   async_stall_fraction   async_stall_seconds ÷ sync_stall_seconds.
//   async_blocked_seconds  of that, the time the loop itself waited (phases.checkpoint: the wait for
//                          startSnapshot's copy before the next optimizer step), and its fraction.
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { pack } from '../data/pack.js';
import { synth } from '../data/synth.js';
import { openTokenFile, type TokenFile } from '../worker-native/token-file.js';
import { ByteTokenizer } from '../data/tokenizer.js';
import { saveCheckpoint, type RunState, type SaveContext } from '../worker-native/host/checkpoint-io.js';
import { runTrainingLoop, type StepRecord } from '../worker-native/host/training-loop.js';
import type { Qwen2Config } from '../worker-native/model.js';
import { native } from '../worker-native/native.js';
import { createTrainer, type Trainer, type TrainerState } from '../worker-native/trainer.js';
import type { Emit } from './run.js';

const CONFIG: Qwen2Config = {
  hidden_size: 768,
  intermediate_size: 2048,
  num_attention_heads: 12,
  num_key_value_heads: 4,
  num_hidden_layers: 4,
  vocab_size: 259,
  rope_theta: 1e6,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
};
const SEQ_LEN = 512;
const WRITE_CHUNK = 64 << 20;
const REPEATS = 5;

const seconds = (startMs: number) => (performance.now() - startMs) / 1000;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function option(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name);
  const value = at >= 0 ? Number(args[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

/** The snapshot's bytes, in the order a checkpoint holds them. */
function stateBytes(s: TrainerState): Uint8Array[] {
  return [s.params, s.expAvg, s.expAvgSq].map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

/** Sequential write of `parts` to one new file in large writes, then fsync: the disk's rate. */
async function diskWriteSeconds(path: string, parts: Uint8Array[]): Promise<number> {
  const started = performance.now();
  const handle = await open(path, 'w');
  try {
    for (const part of parts) {
      for (let at = 0; at < part.byteLength;) {
        const { bytesWritten } = await handle.write(part, at, Math.min(WRITE_CHUNK, part.byteLength - at));
        at += bytesWritten;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  const elapsed = seconds(started);
  await rm(path);
  return elapsed;
}

function saveContext(trainer: Trainer, checkpointsDir: string, checkpointEvery: number): SaveContext {
  return {
    checkpointsDir,
    jobId: 'bench-checkpoint',
    rank: 0,
    world: 1,
    config: CONFIG,
    trainedAs: { seqLen: SEQ_LEN, precision: 'fp32', specials: new ByteTokenizer().specials },
    views: trainer.parameterViews(),
    shard: trainer.shard,
    numParameters: trainer.numParameters,
    retention: { keepLast: 1, keepEvery: 0, checkpointEvery },
    partsTimeoutMs: 60_000,
  };
}

export async function run(emit: Emit, args: string[]): Promise<void> {
  const windows = option(args, '--windows', 6);
  const root = await mkdtemp(join(tmpdir(), 'longctx-bench-checkpoint-'));
  const addon = native();
  addon.setBlasThreads(1);
  const common = { cores: cpus().length, parameters: 0 };
  const record = (metric: string, value: number, unit: string, extra: Record<string, number | string> = {}) =>
    emit({
      bench: 'checkpoint',
      metric,
      value: unit === 'bytes' ? value : Number(value.toPrecision(4)),
      unit,
      ...common,
      load1: Number(loadavg()[0]!.toFixed(2)),
      ...extra,
    });
  let trainer: Trainer | undefined;
  let data: TokenFile | undefined;
  try {
    await synth(join(root, 'corpus.jsonl'), { docs: 200, seed: 1 });
    const packed = await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin') });
    data = await openTokenFile(packed.indexPath);
    trainer = await createTrainer(null, {
      config: CONFIG,
      seed: 1,
      deviceBudgetBytes: 8 * 2 ** 30,
      hostBudgetBytes: 8 * 2 ** 30,
      activationCheckpointing: 'none',
      offload: 'none',
      optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01, gradClip: 1.0 },
    });
    common.parameters = trainer.numParameters;
    const state: RunState = {
      step: 0,
      adamStep: 0,
      sequenceCursor: 0,
      tokensSeen: 0,
      lastLoss: 0,
      seed: 1,
      worldSize: 1,
    };
    const loop = (from: RunState, totalSteps: number, checkpointEvery: number, dir: string) => {
      const steps: (StepRecord & { endMs: number })[] = [];
      const saved: number[] = [];
      return {
        steps,
        saved,
        done: runTrainingLoop({
          trainer: trainer!,
          data: data!,
          seqLen: SEQ_LEN,
          gradAccumulation: 1,
          schedule: { kind: 'constant', lr: 1e-4, warmupSteps: 0, minLr: 0, totalSteps },
          checkpointEvery,
          save: saveContext(trainer!, dir, checkpointEvery),
          state: from,
          onStep: (r) => steps.push({ ...r, endMs: performance.now() }),
          onCheckpoint: () => saved.push(performance.now()),
        }),
      };
    };

    // Warm up (first-touch of every buffer) and get real, non-zero AdamW moments: two steps.
    const warm = loop(state, 2, 2, join(root, 'warmup'));
    const warmState = await warm.done;
    const warmStepSeconds = warm.steps[1]!.stepSeconds;
    await rm(join(root, 'warmup'), { recursive: true, force: true });

    // 1. Save bandwidth against the disk's, interleaved; each rate is the best of REPEATS.
    const disk: number[] = [];
    const save: number[] = [];
    const snapshotSeconds: number[] = [];
    const saveCpu: number[] = [];
    let bytes = 0;
    let started = performance.now();
    let snapshot = trainer.snapshot();
    const freshSnapshotSeconds = seconds(started);
    for (let i = 0; i < REPEATS; i++) {
      // As the training loop does: copy into the arrays of the previous (finished) save.
      started = performance.now();
      snapshot = trainer.snapshot(snapshot);
      snapshotSeconds.push(seconds(started));
      disk.push(await diskWriteSeconds(join(root, 'disk.bin'), stateBytes(snapshot)));
      const dir = join(root, `save-${i}`);
      await mkdir(dir);
      started = performance.now();
      const cpu = process.cpuUsage();
      const saved = await saveCheckpoint(saveContext(trainer, dir, 1), snapshot, {
        ...warmState,
        step: 100 + i,
      });
      save.push(seconds(started));
      const used = process.cpuUsage(cpu);
      saveCpu.push((used.user + used.system) / 1e6);
      bytes = saved!.bytes;
      await rm(dir, { recursive: true, force: true });
    }
    const tensorBytes = sum(stateBytes(snapshot).map((b) => b.byteLength));
    const bestDisk = Math.min(...disk);
    const bestSave = Math.min(...save);
    record('checkpoint_bytes', bytes, 'bytes', { tensor_bytes: tensorBytes });
    record('disk_write_mb_per_s', tensorBytes / bestDisk / 1e6, 'MB/s', {
      chunk_bytes: WRITE_CHUNK,
      runs: disk.length,
      median_mb_per_s: Number((tensorBytes / median(disk) / 1e6).toPrecision(4)),
    });
    record('save_mb_per_s', bytes / bestSave / 1e6, 'MB/s', {
      median_mb_per_s: Number((bytes / median(save) / 1e6).toPrecision(4)),
      cpu_s: Number(median(saveCpu).toPrecision(3)),
    });
    record('snapshot_seconds', median(snapshotSeconds), 's', {
      fresh_arrays_s: Number(freshSnapshotSeconds.toPrecision(3)),
    });
    record('save_vs_disk', bytes / bestSave / (tensorBytes / bestDisk), 'ratio', {
      median_ratio: Number((median(disk) / median(save)).toPrecision(3)),
    });

    // 2. Stall of an async save vs a sync one. A sync save stops training for its snapshot and
    // the whole save: the awaited saves above. An async save, in the real loop: saves at steps k,
    // 2k, … (the loop saves when step % k == 0), k long enough for a save to end well within it.
    const syncSamples = save.map((s, i) => s + snapshotSeconds[i]!);
    const syncStall = median(syncSamples);
    const k = Math.max(6, 2 * Math.ceil((3 * syncStall) / warmStepSeconds));
    const total = (windows + 1) * k;
    const run = loop(warmState, total, k, join(root, 'loop'));
    await run.done;
    const returnedMs = performance.now();
    const byStep = new Map(run.steps.map((s) => [s.step, s]));
    const startMs = (s: StepRecord & { endMs: number }) => s.endMs - s.stepSeconds * 1000;
    // The steps each async save overlapped: the one that took its snapshot, then every step that
    // started before the save had finished.
    const overlapped: number[][] = [];
    for (let j = 1; j <= windows; j++) {
      const steps = [j * k];
      while (startMs(byStep.get(steps.at(-1)! + 1)!) < run.saved[j - 1]!) steps.push(steps.at(-1)! + 1);
      if (steps.at(-1)! >= (j + 1) * k - 1) {
        throw new Error(
          `the save at step ${j * k} lasted its whole ${k}-step window; rerun on a quieter machine`,
        );
      }
      overlapped.push(steps);
    }
    // Baseline: every step of the run that overlapped no save (the final step saves too).
    const busy = new Set(overlapped.flat());
    const clean = run.steps.filter((s) => !busy.has(s.step) && s.step !== total).map((s) => s.stepSeconds);
    const baseline = median(clean);
    const stalls = overlapped.map((steps) => sum(steps.map((s) => byStep.get(s)!.stepSeconds - baseline)));
    const asyncStall = sum(stalls) / stalls.length;
    const spread = Math.sqrt(sum(stalls.map((s) => (s - asyncStall) ** 2)) / (stalls.length - 1));
    const asyncBlocked =
      sum(overlapped.flatMap((steps) => steps.map((x) => byStep.get(x)!.phases.checkpoint))) / windows;
    const final = byStep.get(total)!;
    const loopExtra = {
      seq_len: SEQ_LEN,
      window_steps: k,
      windows,
      baseline_step_s: Number(baseline.toPrecision(3)),
    };
    record('sync_stall_seconds', syncStall, 's', {
      ...loopExtra,
      loop_final_save_s: Number((final.phases.checkpoint + (returnedMs - final.endMs) / 1000).toPrecision(3)),
    });
    record('async_stall_seconds', asyncStall, 's', {
      ...loopExtra,
      stderr_s: Number((spread / Math.sqrt(stalls.length)).toPrecision(2)),
      steps_overlapped: Number((busy.size / windows).toFixed(1)),
    });
    record('async_blocked_seconds', asyncBlocked, 's', loopExtra);
    record('async_stall_fraction', asyncStall / syncStall, 'ratio', loopExtra);
    record('async_blocked_fraction', asyncBlocked / syncStall, 'ratio', loopExtra);
  } finally {
    data?.close();
    trainer?.close();
    await rm(root, { recursive: true, force: true });
  }
}
