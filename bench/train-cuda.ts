// `npm run bench -- train-cuda [--json] [--seq 2048,8192] [--steps 3]`: training throughput of the
// `small` preset on CUDA device 0 with the native trainer's CUDA backend (bf16 weights and
// activations, float32 master weights), one rank, no activation checkpointing, for each offload
// mode. Each configuration runs one warm-up step, then `--steps` timed steps of one micro-batch of
// S tokens + AdamW.
//   tokens_per_s       S × steps ÷ wall seconds of the timed steps
//   step_seconds       median wall seconds of a timed step
//   model_tflops       model FLOPs (orchestrator/plan/flops.ts, no recomputation) ÷ step seconds
//   device_peak_bytes  the device arena's peak over a step (what the planner predicts)
//   offload_overhead   step seconds under an offload mode ÷ under `none`, − 1: what keeping the
//                      optimizer (and the weights) in pinned host memory costs once the prefetch
//                      queue's copies overlap the layers' compute (0 = fully hidden). Emits one `skipped` record where there is no CUDA device.
import { trainingFlopsPerStep } from '../orchestrator/plan/flops.js';
import { MODEL_PRESETS } from '../core/model-config.js';
import { native } from '../worker-native/native.js';
import type { Offload } from '../worker-native/trainer.js';
import type { Emit } from './run.js';

const BENCH = 'train-cuda';
const OFFLOADS: Offload[] = ['none', 'optimizer', 'params+optimizer'];

function option(args: string[], name: string, fallback: string): number[] {
  const at = args.indexOf(name);
  const text = at >= 0 ? args[at + 1] : fallback;
  const values = (text ?? fallback).split(',').map(Number);
  for (const v of values) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be positive integers, got '${text}'`);
  }
  return values;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(emit: Emit, args: string[]): Promise<void> {
  const info = native().buildInfo();
  if (!info.cuda || info.cudaDevices === 0) {
    emit({
      bench: BENCH,
      metric: 'skipped',
      value: 0,
      unit: 'none',
      skipped: true,
      reason: info.cuda ? 'no CUDA device is visible to this process' : 'the addon was built without CUDA',
    });
    return;
  }
  const seqs = option(args, '--seq', '2048,8192');
  const [timedSteps] = option(args, '--steps', '3');
  const config = MODEL_PRESETS.small!;
  const device = info.cudaDeviceNames[0] ?? 'unknown';
  for (const seqLen of seqs) {
    const stepSeconds = new Map<Offload, number>();
    const ids = Int32Array.from({ length: seqLen }, (_, i) => (i * 7919 + 1) % config.vocab_size);
    const labels = Int32Array.from({ length: seqLen }, (_, i) => (i * 7919 + 2) % config.vocab_size);
    const positions = Int32Array.from({ length: seqLen }, (_, i) => i);
    for (const offload of OFFLOADS) {
      const trainer = await native().createTrainer(null, {
        config,
        seed: 1,
        deviceBudgetBytes: 8 * 2 ** 30,
        hostBudgetBytes: 8 * 2 ** 30,
        activationCheckpointing: 'none',
        offload,
        optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01, gradClip: 1 },
        device: 'cuda:0',
      });
      try {
        const seconds: number[] = [];
        for (let s = 0; s < 1 + timedSteps!; s++) {
          if (s === 1) trainer.resetPeak();
          const start = performance.now();
          await trainer.accumulate(ids, positions, labels, 1);
          await trainer.step(1e-4);
          if (s >= 1) seconds.push((performance.now() - start) / 1000);
        }
        const step = median(seconds);
        stepSeconds.set(offload, step);
        const total = seconds.reduce((a, b) => a + b, 0);
        const extra = { device, seq: seqLen, offload, steps: timedSteps! };
        emit({
          bench: BENCH,
          metric: 'tokens_per_s',
          value: Math.round((seqLen * seconds.length) / total),
          unit: 'tok/s',
          ...extra,
        });
        emit({
          bench: BENCH,
          metric: 'step_seconds',
          value: Number(step.toPrecision(4)),
          unit: 's',
          ...extra,
        });
        emit({
          bench: BENCH,
          metric: 'model_tflops',
          value: Number((trainingFlopsPerStep(config, seqLen, 1) / step / 1e12).toPrecision(4)),
          unit: 'TFLOP/s',
          ...extra,
        });
        emit({
          bench: BENCH,
          metric: 'device_peak_bytes',
          value: trainer.memory().devicePeak,
          unit: 'B',
          ...extra,
        });
      } finally {
        trainer.close();
      }
    }
    const none = stepSeconds.get('none')!;
    for (const offload of OFFLOADS.slice(1)) {
      emit({
        bench: BENCH,
        metric: 'offload_overhead',
        value: Number((stepSeconds.get(offload)! / none - 1).toFixed(4)),
        unit: 'ratio',
        device,
        seq: seqLen,
        offload,
      });
    }
  }
}
