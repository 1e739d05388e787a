// `npm run bench -- train-cuda [--json] [--presets qwen2-0.5b,qwen2-1.5b] [--seq 8192,32768]
//   [--steps 3] [--no-torch] [--offload-sweep]`
//
// Training speed on CUDA device 0, one rank, beside what a user would otherwise run, all measured
// in this one run on this one GPU:
//   longctx   the native trainer's CUDA backend: bf16 weights and activations, float32 master
//             weights, activation checkpointing of every layer ('full'), no offload, AdamW
//   pytorch   bench/peers/train_torch.py: a plain-PyTorch Qwen2 of the same config (float32
//             parameters under bf16 autocast, scaled_dot_product_attention, checkpointing of every
//             layer, fused AdamW), in a python3 with torch (LONGCTX_PYTHON, else python3)
// Each runs one warm-up step, then `--steps` timed steps of one sequence of S tokens + optimizer.
//   tokens_per_s        S × steps ÷ wall seconds of the timed steps
//   mfu_datasheet       model FLOPs (orchestrator/plan/flops.ts, no recompute) per second ÷ the
//                       GPU's dense bf16 datasheet peak (orchestrator/plan/devices.ts)
//   mfu_measured        the same ÷ the bf16 matmul rate torch.matmul reaches at 8192³ in this run
//   device_peak_bytes   longctx: the device arena's peak (libraries' workspaces are outside it);
//                       pytorch: torch.cuda.max_memory_allocated
//   speedup             longctx tokens/s ÷ pytorch tokens/s
// and the trainer's GEMM shapes (at S = the first --seq) through our Gemm (cuBLASLt when the host
// has it, and the tiled kernel) beside torch.matmul: gemm_tflops.
// --offload-sweep adds the old offload study: the `small` preset under each offload mode.
// Emits one `skipped` record where there is no CUDA device.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { MODEL_PRESETS, type ModelConfig } from '../core/model-config.js';
import { gpuProfileFor } from '../orchestrator/plan/devices.js';
import { trainingFlopsPerStep } from '../orchestrator/plan/flops.js';
import { cudaApi } from '../worker-native/cuda.js';
import { native } from '../worker-native/native.js';
import type { ActivationCheckpointing, Offload } from '../worker-native/trainer.js';
import type { Emit } from './run.js';

const BENCH = 'train-cuda';
const PEER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '../../bench/peers/train_torch.py');

function list(args: string[], name: string, fallback: string): string[] {
  const at = args.indexOf(name);
  return (at >= 0 ? (args[at + 1] ?? fallback) : fallback).split(',');
}

function positiveInts(args: string[], name: string, fallback: string): number[] {
  const values = list(args, name, fallback).map(Number);
  for (const v of values)
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be positive integers`);
  return values;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 4) => Number(x.toPrecision(digits));

interface Measured {
  seconds: number[];
  peakBytes: number;
}

async function measureTrainer(
  config: ModelConfig,
  seq: number,
  steps: number,
  activationCheckpointing: ActivationCheckpointing,
  offload: Offload,
  deviceBudgetBytes: number,
): Promise<Measured> {
  const ids = Int32Array.from({ length: seq }, (_, i) => (i * 7919 + 1) % config.vocab_size);
  const labels = Int32Array.from({ length: seq }, (_, i) => (i * 7919 + 2) % config.vocab_size);
  const positions = Int32Array.from({ length: seq }, (_, i) => i);
  const trainer = await native().createTrainer(null, {
    config,
    seed: 1,
    deviceBudgetBytes,
    hostBudgetBytes: 64 * 2 ** 30,
    activationCheckpointing,
    offload,
    optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01, gradClip: 1 },
    device: 'cuda:0',
  });
  try {
    const seconds: number[] = [];
    for (let s = 0; s < 1 + steps; s++) {
      if (s === 1) trainer.resetPeak();
      const start = performance.now();
      await trainer.accumulate(ids, positions, labels, 1);
      await trainer.step(1e-4);
      if (s >= 1) seconds.push((performance.now() - start) / 1000);
    }
    return { seconds, peakBytes: trainer.memory().devicePeak };
  } finally {
    trainer.close();
  }
}

/** The linear layers' GEMMs of one training micro-step at S tokens (forward shapes, out = x·Wᵀ). */
function gemmShapes(name: string, c: ModelConfig, seq: number) {
  const headDim = c.hidden_size / c.num_attention_heads;
  return [
    { name: `${name} q`, m: seq, n: c.hidden_size, k: c.hidden_size },
    { name: `${name} k/v`, m: seq, n: c.num_key_value_heads * headDim, k: c.hidden_size },
    { name: `${name} gate/up`, m: seq, n: c.intermediate_size, k: c.hidden_size },
    { name: `${name} down`, m: seq, n: c.hidden_size, k: c.intermediate_size },
    { name: `${name} lm-head chunk`, m: 256, n: c.vocab_size, k: c.hidden_size },
  ];
}

interface PeerLine {
  kind: string;
  [key: string]: unknown;
}

/** Runs the PyTorch peer once with `request`; its lines, or why it could not run. */
function runPeer(request: object): Promise<{ lines: PeerLine[] } | { error: string }> {
  const python = process.env.LONGCTX_PYTHON ?? 'python3';
  return new Promise((resolve) => {
    execFile(
      python,
      [PEER_SCRIPT, JSON.stringify(request)],
      { maxBuffer: 64 * 2 ** 20, timeout: 30 * 60_000 },
      (err, stdout, stderr) => {
        if (err) {
          resolve({
            error: `${python} ${PEER_SCRIPT}: ${stderr.trim().split('\n').slice(-3).join(' | ') || err.message}`,
          });
          return;
        }
        resolve({
          lines: stdout
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as PeerLine),
        });
      },
    );
  });
}

export async function run(emit: Emit, args: string[]): Promise<void> {
  const info = native().buildInfo();
  const cuda = cudaApi();
  if (!cuda || info.cudaDevices === 0) {
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
  const presets = list(args, '--presets', 'qwen2-0.5b,qwen2-1.5b');
  for (const p of presets) if (!MODEL_PRESETS[p]) throw new Error(`--presets: unknown preset '${p}'`);
  const seqs = positiveInts(args, '--seq', '8192,32768');
  const [steps] = positiveInts(args, '--steps', '3');
  const backendInfo = cuda.cudaBackendInfo();
  const device = backendInfo.deviceNames[0] ?? 'unknown';
  const memory = backendInfo.deviceMemoryBytes[0] ?? 0;
  const datasheet = gpuProfileFor(device)?.peakFlops;
  const gemmImpl = backendInfo.cublasLt ? 'cublasLt' : 'tiled';
  emit({
    bench: BENCH,
    metric: 'gemm_backend',
    value: backendInfo.cublasLt ? 1 : 0,
    unit: 'cublasLt',
    device,
    gemmImpl,
  });

  // Ours first, then the peer: never both on the GPU at once.
  const shapes = presets.flatMap((p) => gemmShapes(p, MODEL_PRESETS[p]!, seqs[0]!));
  for (const shape of shapes) {
    for (const backend of backendInfo.cublasLt ? (['cublasLt', 'tiled'] as const) : (['tiled'] as const)) {
      const { ms } = await cuda.cudaTimeGemm(
        { m: shape.m, n: shape.n, k: shape.k, transB: true, backend },
        20,
      );
      emit({
        bench: BENCH,
        metric: 'gemm_tflops',
        value: round((2 * shape.m * shape.n * shape.k) / (ms / 1000) / 1e12),
        unit: 'TFLOP/s',
        device,
        impl: `longctx-${backend}`,
        ...shape,
      });
    }
  }
  const ours = new Map<string, Measured | { error: string }>();
  for (const preset of presets)
    for (const seq of seqs) {
      try {
        ours.set(
          `${preset}@${seq}`,
          await measureTrainer(MODEL_PRESETS[preset]!, seq, steps!, 'full', 'none', memory),
        );
      } catch (err) {
        ours.set(`${preset}@${seq}`, { error: (err as Error).message.split('\n')[0]! });
      }
    }

  let peer: Map<string, Measured | { error: string }> | undefined;
  let matmulFlops: number | undefined;
  if (!args.includes('--no-torch')) {
    const result = await runPeer({
      matmul: true,
      gemms: shapes.map((s) => ({ ...s, iterations: 20 })),
      train: presets.flatMap((name) =>
        seqs.map((seq) => ({ name, seq, steps, config: MODEL_PRESETS[name] })),
      ),
    });
    if ('error' in result) {
      emit({
        bench: BENCH,
        metric: 'pytorch_skipped',
        value: 0,
        unit: 'none',
        skipped: true,
        reason: result.error,
      });
    } else {
      peer = new Map();
      for (const line of result.lines) {
        if (line.kind === 'versions') {
          emit({
            bench: BENCH,
            metric: 'pytorch_version',
            value: 0,
            unit: 'none',
            torch: String(line.torch),
            device,
          });
        } else if (line.kind === 'matmul') {
          matmulFlops = (2 * 8192 ** 3) / ((line.ms as number) / 1000);
          emit({
            bench: BENCH,
            metric: 'bf16_matmul_tflops',
            value: round(matmulFlops / 1e12),
            unit: 'TFLOP/s',
            device,
            impl: 'torch',
            m: 8192,
            n: 8192,
            k: 8192,
          });
        } else if (line.kind === 'gemm') {
          const { m, n, k, ms, name } = line as unknown as {
            m: number;
            n: number;
            k: number;
            ms: number;
            name: string;
          };
          emit({
            bench: BENCH,
            metric: 'gemm_tflops',
            value: round((2 * m * n * k) / (ms / 1000) / 1e12),
            unit: 'TFLOP/s',
            device,
            impl: 'torch',
            name,
            m,
            n,
            k,
          });
        } else if (line.kind === 'train') {
          const key = `${String(line.name)}@${String(line.seq)}`;
          peer.set(
            key,
            line.error
              ? { error: line.error as string }
              : { seconds: line.seconds as number[], peakBytes: line.peak_bytes as number },
          );
        }
      }
    }
  }

  for (const preset of presets)
    for (const seq of seqs) {
      const key = `${preset}@${seq}`;
      const flops = trainingFlopsPerStep(MODEL_PRESETS[preset]!, seq, 1);
      const tokens: Partial<Record<string, number>> = {};
      for (const [impl, results] of [
        ['longctx', ours],
        ['pytorch', peer],
      ] as const) {
        const r = results?.get(key);
        if (!r) continue;
        const extra = { device, preset, seq, impl, steps: steps!, activation_checkpointing: 'full' };
        if ('error' in r) {
          emit({ bench: BENCH, metric: 'failed', value: 0, unit: 'none', reason: r.error, ...extra });
          continue;
        }
        const perSecond = (seq * r.seconds.length) / sum(r.seconds);
        const step = median(r.seconds);
        tokens[impl] = perSecond;
        emit({
          bench: BENCH,
          metric: 'tokens_per_s',
          value: Math.round(perSecond),
          unit: 'tok/s',
          spread_min: Math.round(seq / Math.max(...r.seconds)),
          spread_max: Math.round(seq / Math.min(...r.seconds)),
          ...extra,
        });
        emit({ bench: BENCH, metric: 'step_seconds', value: round(step), unit: 's', ...extra });
        if (datasheet)
          emit({
            bench: BENCH,
            metric: 'mfu_datasheet',
            value: round(flops / step / datasheet, 3),
            unit: 'ratio',
            peak_tflops: datasheet / 1e12,
            ...extra,
          });
        if (matmulFlops)
          emit({
            bench: BENCH,
            metric: 'mfu_measured',
            value: round(flops / step / matmulFlops, 3),
            unit: 'ratio',
            matmul_tflops: round(matmulFlops / 1e12),
            ...extra,
          });
        emit({ bench: BENCH, metric: 'device_peak_bytes', value: r.peakBytes, unit: 'B', ...extra });
      }
      if (tokens.longctx && tokens.pytorch)
        emit({
          bench: BENCH,
          metric: 'speedup',
          value: round(tokens.longctx / tokens.pytorch, 3),
          unit: 'x pytorch',
          device,
          preset,
          seq,
        });
    }

  if (args.includes('--offload-sweep')) await offloadSweep(emit, device, seqs, steps!, memory);
}

/** The `small` preset under each offload mode: what keeping state in pinned host memory costs. */
async function offloadSweep(emit: Emit, device: string, seqs: number[], steps: number, memory: number) {
  const offloads: Offload[] = ['none', 'optimizer', 'params+optimizer'];
  for (const seq of seqs) {
    const step = new Map<Offload, number>();
    for (const offload of offloads) {
      const r = await measureTrainer(MODEL_PRESETS.small!, seq, steps, 'none', offload, memory);
      step.set(offload, median(r.seconds));
      emit({
        bench: BENCH,
        metric: 'small_step_seconds',
        value: round(median(r.seconds)),
        unit: 's',
        device,
        seq,
        offload,
      });
    }
    for (const offload of offloads.slice(1))
      emit({
        bench: BENCH,
        metric: 'offload_overhead',
        value: round(step.get(offload)! / step.get('none')! - 1),
        unit: 'ratio',
        device,
        seq,
        offload,
      });
  }
}
