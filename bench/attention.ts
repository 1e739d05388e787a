// Causal flash attention on one core, against single-thread sgemm measured in the same run.
//
// Useful FLOPs of causal attention per head: forward 2·S²·D (QKᵀ and PV over the lower triangle,
// 4·S²·D / 2), backward 2.5× that (five products instead of two). Masked work the kernel does on
// diagonal blocks is not counted. Shape: H=4 query heads, 2 kv heads, head_dim 64.
//
// `npm run bench -- attention [--json] [--seq 4096,16384] [--repeat N]`
import type { Emit } from './run.js';
import { native } from '../worker-native/native.js';
import type { AttentionDims } from '../worker-native/attention.js';

const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 64;
const WORKSPACE_SEQ = 32768;

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

function filled(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x / 2 ** 32 - 0.5;
  }
  return out;
}

async function seconds(work: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export async function run(emit: Emit, args: string[]): Promise<void> {
  const addon = native();
  addon.setBlasThreads(1);
  const seqs = (option(args, '--seq') ?? '4096,16384').split(',').map(Number);
  const repeat = Number(option(args, '--repeat') ?? '3');
  const record = (metric: string, value: number, unit: string, extra: Record<string, number> = {}) =>
    emit({ bench: 'attention', metric, value: Number(value.toPrecision(4)), unit, ...extra });

  const sgemm = await addon.measureSgemm(2048, 5);
  record('sgemm_gflops', sgemm.gflops, 'GFLOP/s', { n: 2048, threads: 1 });

  for (const s of seqs) {
    const dims: AttentionDims = { qLen: s, kvLen: s, heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM };
    const qn = s * HEADS * HEAD_DIM;
    const kvn = s * KV_HEADS * HEAD_DIM;
    const [q, k, v, dout] = [filled(qn, 1), filled(kvn, 2), filled(kvn, 3), filled(qn, 4)];
    const o = new Float32Array(qn);
    const lse = new Float32Array(s * HEADS);
    const dq = new Float32Array(qn);
    const dk = new Float32Array(kvn);
    const dv = new Float32Array(kvn);
    const forwardFlops = HEADS * 2 * s * s * HEAD_DIM;
    const backwardFlops = 2.5 * forwardFlops;

    // The best of `repeat` runs, each timing forward and backward separately.
    let fwd = Infinity;
    let bwd = Infinity;
    for (let i = 0; i < repeat; i++) {
      fwd = Math.min(fwd, await seconds(() => addon.flashAttentionForward(dims, 'causal', q, k, v, o, lse)));
      bwd = Math.min(
        bwd,
        await seconds(() => addon.flashAttentionBackward(dims, 'causal', q, k, v, o, lse, dout, dq, dk, dv)),
      );
    }
    const extra = { seq_len: s, heads: HEADS, kv_heads: KV_HEADS, head_dim: HEAD_DIM };
    const fwdRate = forwardFlops / fwd / 1e9;
    const bwdRate = backwardFlops / bwd / 1e9;
    const totalRate = (forwardFlops + backwardFlops) / (fwd + bwd) / 1e9;
    record(`fwd_gflops_s${s}`, fwdRate, 'GFLOP/s', extra);
    record(`bwd_gflops_s${s}`, bwdRate, 'GFLOP/s', extra);
    record(`fwd_bwd_gflops_s${s}`, totalRate, 'GFLOP/s', extra);
    record(`fwd_seconds_s${s}`, fwd, 's', extra);
    record(`bwd_seconds_s${s}`, bwd, 's', extra);
    record(`fwd_vs_sgemm_s${s}`, fwdRate / sgemm.gflops, 'ratio', extra);
    record(`fwd_bwd_vs_sgemm_s${s}`, totalRate / sgemm.gflops, 'ratio', extra);
  }

  const workspace = addon.flashAttentionWorkspace({
    qLen: WORKSPACE_SEQ,
    kvLen: WORKSPACE_SEQ,
    heads: HEADS,
    kvHeads: KV_HEADS,
    headDim: HEAD_DIM,
  });
  const extra = { seq_len: WORKSPACE_SEQ, heads: HEADS, kv_heads: KV_HEADS, head_dim: HEAD_DIM };
  record('workspace_bytes_forward', workspace.forward * 4, 'bytes', extra);
  record('workspace_bytes_backward', workspace.backward * 4, 'bytes', extra);
}
