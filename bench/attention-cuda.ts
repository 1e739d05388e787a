// `npm run bench -- attention-cuda [--json] [--iterations N]`: the CUDA flash-attention kernels'
// throughput, forward and forward + backward, bf16, causal, head_dim 64 and 128, sequence lengths
// 4096 and 16384, side by side with PyTorch's scaled_dot_product_attention measured in the same run
// on the same GPU (through `python3 -c`). Hidden size 2048 as in FlashAttention's benchmarks:
// 32 heads of 64 or 16 heads of 128, one sequence.
//
// FLOPs follow the FlashAttention convention: forward 4·S²·heads·head_dim (two matrix products),
// halved for causal; backward 2.5× the forward (its five products), whatever a kernel recomputes.
// Without a GPU (or without CUDA in the build) it emits one record saying it was skipped and why.
import { spawnSync } from 'node:child_process';

import { cudaApi } from '../worker-native/cuda.js';
import { native } from '../worker-native/native.js';
import type { Emit } from './run.js';

const BENCH = 'attention-cuda';
const HIDDEN = 2048;
const SEQUENCES = [4096, 16384];
const HEAD_DIMS = [64, 128];

interface Config {
  seq: number;
  heads: number;
  headDim: number;
  iterations: number;
}

interface Timing {
  forwardMs: number;
  forwardBackwardMs: number;
}

// Times torch's SDPA for each config (layout [batch, heads, seq, head_dim], causal) with CUDA events.
const TORCH_SCRIPT = `
import json, sys
import torch
import torch.nn.functional as F
results = []
for c in json.loads(sys.argv[1]):
    shape = (1, c["heads"], c["seq"], c["headDim"])
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    dout = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    def forward():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
    def forward_backward():
        q.grad = k.grad = v.grad = None
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(dout)
    def time(step):
        step()
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(c["iterations"]):
            step()
        stop.record()
        torch.cuda.synchronize()
        return start.elapsed_time(stop) / c["iterations"]
    results.append({"forwardMs": time(forward), "forwardBackwardMs": time(forward_backward)})
print(json.dumps({"torch": torch.__version__, "results": results}))
`;

function torchTimings(configs: Config[]): { version: string; results: Timing[] } | { error: string } {
  const run = spawnSync('python3', ['-c', TORCH_SCRIPT, JSON.stringify(configs)], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (run.error) return { error: `python3 could not run: ${run.error.message}` };
  if (run.status !== 0)
    return { error: `python3 exited with ${run.status}: ${run.stderr.trim().split('\n').pop()}` };
  const last = run.stdout.trim().split('\n').pop() ?? '';
  const parsed = JSON.parse(last) as { torch: string; results: Timing[] };
  return { version: parsed.torch, results: parsed.results };
}

/** FLOPs of one causal forward. */
function forwardFlops(c: Config): number {
  return (4 * c.seq * c.seq * c.heads * c.headDim) / 2;
}

function tflops(flops: number, ms: number): number {
  return Number((flops / (ms * 1e-3) / 1e12).toFixed(2));
}

export async function run(emit: Emit, args: string[]): Promise<void> {
  const cuda = cudaApi();
  const devices = native().buildInfo().cudaDevices;
  if (!cuda || devices === 0) {
    emit({
      bench: BENCH,
      metric: 'skipped',
      value: 0,
      unit: 'none',
      skipped: true,
      reason: cuda ? 'no CUDA device is visible to this process' : 'the addon was built without CUDA',
    });
    return;
  }
  const at = args.indexOf('--iterations');
  const iterations = at >= 0 ? Number(args[at + 1]) : 10;
  if (!Number.isInteger(iterations) || iterations < 1)
    throw new Error('--iterations must be a positive integer');

  const configs: Config[] = [];
  for (const headDim of HEAD_DIMS)
    for (const seq of SEQUENCES) configs.push({ seq, heads: HIDDEN / headDim, headDim, iterations });

  const device = cuda.cudaBackendInfo().deviceNames[0] ?? 'unknown';
  const ours: Timing[] = [];
  for (const c of configs) {
    const dims = { qLen: c.seq, kvLen: c.seq, heads: c.heads, kvHeads: c.heads, headDim: c.headDim };
    ours.push(await cuda.cudaTimeAttention(dims, 'causal', iterations));
  }
  const torch = torchTimings(configs);

  configs.forEach((c, i) => {
    const shape = `d${c.headDim} S${c.seq} causal`;
    const fwd = forwardFlops(c);
    const extra = { device, seq: c.seq, headDim: c.headDim, heads: c.heads, iterations };
    const mine = ours[i]!;
    emit({
      bench: BENCH,
      metric: `longctx fwd ${shape}`,
      value: tflops(fwd, mine.forwardMs),
      unit: 'TFLOP/s',
      ms: mine.forwardMs,
      ...extra,
    });
    emit({
      bench: BENCH,
      metric: `longctx fwd+bwd ${shape}`,
      value: tflops(3.5 * fwd, mine.forwardBackwardMs),
      unit: 'TFLOP/s',
      ms: mine.forwardBackwardMs,
      ...extra,
    });
    if ('error' in torch) return;
    const theirs = torch.results[i]!;
    const version = { torch: torch.version };
    emit({
      bench: BENCH,
      metric: `torch sdpa fwd ${shape}`,
      value: tflops(fwd, theirs.forwardMs),
      unit: 'TFLOP/s',
      ms: theirs.forwardMs,
      ...extra,
      ...version,
    });
    emit({
      bench: BENCH,
      metric: `torch sdpa fwd+bwd ${shape}`,
      value: tflops(3.5 * fwd, theirs.forwardBackwardMs),
      unit: 'TFLOP/s',
      ms: theirs.forwardBackwardMs,
      ...extra,
      ...version,
    });
  });
  if ('error' in torch)
    emit({ bench: BENCH, metric: 'torch sdpa', value: 0, unit: 'none', skipped: true, reason: torch.error });
}
