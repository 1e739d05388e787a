// One rank of the ring benchmark (bench/ring.ts; rank scripts live apart so the bench runner does not list them): `node ring-rank.js '<json>'`. Runs ring attention
// forward+backward on random data of this rank's size, then the same K/V and dK/dV transfers with
// no compute in between (what the exchange costs when nothing hides it), and reports both.
import '../../worker-native/comm.js';
import { exitWithParent, finish, report } from '../../worker-native/host/rank-processes.js';
import { native } from '../../worker-native/native.js';
import type { Sharding } from '../../worker-native/ring.js';

export interface RingBenchJob {
  rank: number;
  world: number;
  redisPort: number;
  prefix: string;
  sharding: Sharding;
  seqLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

async function main(): Promise<void> {
  exitWithParent();
  const job = JSON.parse(process.argv[2] ?? '{}') as RingBenchJob;
  const addon = native();
  addon.setBlasThreads(1);
  const tokens = job.seqLen / job.world;
  const qSize = tokens * job.heads * job.headDim;
  const kvSize = tokens * job.kvHeads * job.headDim;
  const comm = await addon.createCommunicator({
    rank: job.rank,
    size: job.world,
    redisPort: job.redisPort,
    prefix: job.prefix,
    timeoutMs: 600_000,
  });
  await comm.barrier();
  const result = await addon.ringAttention(
    comm,
    { heads: job.heads, kvHeads: job.kvHeads, headDim: job.headDim, sharding: job.sharding },
    tokens,
    random(qSize, 1 + job.rank),
    random(kvSize, 101 + job.rank),
    random(kvSize, 201 + job.rank),
    random(qSize, 301 + job.rank),
  );
  // The same transfers with nothing to overlap: N-1 K/V blocks forward, N-1 K/V and N dK/dV backward.
  await comm.barrier();
  const block = new Float32Array(2 * kvSize);
  const inbox = new Float32Array(2 * kvSize);
  const next = (job.rank + 1) % job.world;
  const prev = (job.rank - 1 + job.world) % job.world;
  const hops = 3 * job.world - 2;
  const started = process.hrtime.bigint();
  for (let h = 0; h < hops; h++) await Promise.all([comm.send(next, block, 9), comm.recv(prev, inbox, 9)]);
  const exchangeSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  await comm.close();
  report({
    done: true,
    ok: true,
    rank: job.rank,
    forward: result.forward,
    backward: result.backward,
    exchangeSeconds,
  });
  finish(0);
}

main().catch((err: unknown) => {
  report({ done: true, ok: false, error: err instanceof Error ? err.message : String(err) });
  finish(1);
});
