// `npm run bench -- ring --json`: zigzag vs contiguous ring attention, forward+backward, causal,
// S=16384, H=4, kv_heads=2, D=64 on N=8 rank processes over gloo (loopback), against one process
// running flash attention over the whole sequence in the same run.
//   balance_max_over_mean  max over ranks of compute CPU seconds ÷ their mean (1.0 = perfect)
//   overhead_vs_single     Σ ranks' compute CPU seconds ÷ CPU seconds of the single process
//   comm_hidden_fraction   of the K/V and dK/dV bytes a rank received, the fraction that had fully
//                          arrived by the time the rank needed them (hidden behind compute)
//   exposed_wait_fraction  time ranks waited on transfers ÷ the time the same transfers take with
//                          no compute at all (lower is better; with 8 ranks on fewer cores it also
//                          counts waiting for a descheduled peer)
//   bytes_sent_per_rank    payload bytes a rank sent, forward+backward
// CPU seconds (not wall) measure the work: the ranks share the machine's cores, so wall time
// mostly measures the scheduler. The wait-based fraction does include that sharing.
import { fileURLToPath } from 'node:url';

import { startEmbeddedRedis } from '../cluster/embedded-redis.js';
import '../worker-native/attention.js';
import { RankGroup } from '../worker-native/host/rank-processes.js';
import { native } from '../worker-native/native.js';
import type { RingPassStats, Sharding } from '../worker-native/ring.js';
import type { Emit } from './run.js';
import type { RingBenchJob } from './ranks/ring-rank.js';

const shape = { seqLen: 16384, heads: 4, kvHeads: 2, headDim: 64 };
const world = 8;

interface RankReport {
  ok: boolean;
  error?: string;
  forward: RingPassStats;
  backward: RingPassStats;
  exchangeSeconds: number;
}

async function singleProcessCpuSeconds(): Promise<number> {
  const { seqLen, heads, kvHeads, headDim } = shape;
  const addon = native();
  addon.setBlasThreads(1);
  const q = new Float32Array(seqLen * heads * headDim).fill(0.01);
  const kv = new Float32Array(seqLen * kvHeads * headDim).fill(0.02);
  const o = new Float32Array(q.length);
  const lse = new Float32Array(seqLen * heads);
  const dims = { qLen: seqLen, kvLen: seqLen, heads, kvHeads, headDim };
  const before = process.cpuUsage();
  await addon.flashAttentionForward(dims, 'causal', q, kv, kv, o, lse);
  await addon.flashAttentionBackward(
    dims,
    'causal',
    q,
    kv,
    kv,
    o,
    lse,
    q,
    new Float32Array(q.length),
    new Float32Array(kv.length),
    new Float32Array(kv.length),
  );
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

async function runRing(redisPort: number, sharding: Sharding): Promise<RankReport[]> {
  const script = fileURLToPath(new URL('./ranks/ring-rank.js', import.meta.url));
  const prefix = `longctx/bench-ring-${process.pid}-${sharding}/1`;
  const group = new RankGroup({
    script,
    ranks: [...Array(world).keys()],
    args: (rank) => [
      JSON.stringify({ rank, world, redisPort, prefix, sharding, ...shape } satisfies RingBenchJob),
    ],
  });
  try {
    const reports: RankReport[] = [];
    for (const exit of await group.exited()) {
      const r = exit.messages.find((m) => m.done === true) as RankReport | undefined;
      if (!r?.ok) throw new Error(`ring bench rank ${exit.rank} failed: ${r?.error ?? exit.stderr}`);
      reports.push(r);
    }
    return reports;
  } finally {
    await group.stop();
  }
}

export async function run(emit: Emit): Promise<void> {
  const single = await singleProcessCpuSeconds();
  emit({ bench: 'ring', metric: 'single_cpu_seconds', value: single, unit: 's', ...shape });
  const redis = await startEmbeddedRedis();
  try {
    for (const sharding of ['zigzag', 'contiguous'] as const) {
      const reports = await runRing(redis.port, sharding);
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      const both = (r: RankReport, f: (p: RingPassStats) => number) => f(r.forward) + f(r.backward);
      const cpu = reports.map((r) => both(r, (p) => p.computeCpuSeconds));
      const mean = sum(cpu) / cpu.length;
      const received = sum(reports.map((r) => both(r, (p) => p.bytesReceived)));
      const ready = sum(reports.map((r) => both(r, (p) => p.bytesReceivedReady)));
      const exposed = reports.map((r) => both(r, (p) => p.waitSeconds) / r.exchangeSeconds);
      const metrics: [string, number, string][] = [
        ['balance_max_over_mean', Math.max(...cpu) / mean, 'ratio'],
        ['overhead_vs_single', sum(cpu) / single, 'ratio'],
        ['comm_hidden_fraction', ready / received, 'fraction'],
        ['exposed_wait_fraction', sum(exposed) / exposed.length, 'ratio'],
        [
          'bytes_sent_per_rank',
          sum(reports.map((r) => both(r, (p) => p.bytesSent))) / reports.length,
          'bytes',
        ],
      ];
      for (const [metric, value, unit] of metrics) {
        emit({ bench: 'ring', metric, value, unit, sharding, ranks: world, ...shape });
      }
    }
  } finally {
    await redis.stop();
  }
}
