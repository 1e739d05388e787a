// `node dist/worker-native/host/comm-demo.js`: 8 rank processes meet through a private Redis, then
// run a barrier, an all-reduce and a ring pass over gloo on loopback, checking every result. Prints a
// short summary, stops everything it started, and exits 0 only when every check passed.
// The same file is the rank program: the demo starts itself again with --rank.
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { startEmbeddedRedis } from '../../cluster/embedded-redis.js';
import { createCommunicator, rendezvousPrefix, ringPeers, type CommStats } from '../comm.js';
import { exitWithParent, finish, report, RankGroup, type RankMessage } from './rank-processes.js';

const SIZE = 8;
const ALL_REDUCE_FLOATS = 1 << 18; // 1 MiB of float32 per rank
const RING_WORDS = 1 << 18; // 1 MiB block per rank

interface RankReport extends RankMessage {
  rank: number;
  ok: boolean;
  error?: string;
  rendezvousSeconds: number;
  barrierSeconds: number;
  allReduceSeconds: number;
  allReduceExact: boolean;
  allReduceHash: string;
  ranksSum: number;
  ringSeconds: number;
  ringIntact: boolean;
  stats: CommStats;
}

const seconds = (start: number) => (performance.now() - start) / 1000;

/** Element i of rank r's all-reduce input: steps of 1/16, so the sum over ranks is exact in float32. */
const allReduceInput = (rank: number, i: number) => (((i % 509) - 254) / 16) * (rank + 1);

async function runRank(rank: number, size: number, redisPort: number, prefix: string): Promise<RankReport> {
  let t = performance.now();
  const comm = await createCommunicator({ rank, size, redisPort, prefix, timeoutMs: 60_000 });
  try {
    const rendezvousSeconds = seconds(t);

    t = performance.now();
    await comm.barrier();
    const barrierSeconds = seconds(t);

    const data = Float32Array.from({ length: ALL_REDUCE_FLOATS }, (_, i) => allReduceInput(rank, i));
    t = performance.now();
    await comm.allReduceSum(data);
    const allReduceSeconds = seconds(t);
    const triangle = (size * (size + 1)) / 2;
    const allReduceExact = data.every((v, i) => v === allReduceInput(0, i) * triangle);
    const ranks = new Float64Array([rank]);
    await comm.allReduceSum(ranks);

    const { next, prev } = ringPeers(rank, size);
    const block = Uint32Array.from({ length: RING_WORDS }, (_, i) => rank * 2 ** 24 + i);
    const inbox = new Uint32Array(RING_WORDS);
    t = performance.now();
    const recv = comm.irecv(prev, inbox, 1);
    const send = comm.isend(next, block, 1);
    await Promise.all([recv.wait(), send.wait()]);
    const ringSeconds = seconds(t);
    const ringIntact = inbox.every((v, i) => v === prev * 2 ** 24 + i);

    return {
      rank,
      ok: allReduceExact && ranks[0] === (size * (size - 1)) / 2 && ringIntact,
      rendezvousSeconds,
      barrierSeconds,
      allReduceSeconds,
      allReduceExact,
      allReduceHash: createHash('sha256').update(new Uint8Array(data.buffer)).digest('hex'),
      ranksSum: ranks[0]!,
      ringSeconds,
      ringIntact,
      stats: comm.stats(),
    };
  } finally {
    await comm.close();
  }
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
const slowest = (reports: RankReport[], key: keyof RankReport) =>
  Math.max(...reports.map((r) => r[key] as number)).toFixed(3) + ' s';

function summarize(reports: RankReport[], prefix: string, redisUrl: string): boolean {
  const count = (pass: (r: RankReport) => boolean) => `${reports.filter(pass).length}/${SIZE}`;
  const identical = reports.every((r) => r.allReduceHash === reports[0]?.allReduceHash);
  const sent = reports.map((r) => r.stats.bytesSent);
  const meanWait = reports.reduce((s, r) => s + r.stats.waitSeconds, 0) / reports.length;
  console.log(`longctx comm demo: ${SIZE} rank processes, gloo over TCP on 127.0.0.1`);
  console.log(
    `  rendezvous  '${prefix}' on ${redisUrl}: ${SIZE}/${SIZE} connected, slowest ${slowest(reports, 'rendezvousSeconds')}`,
  );
  console.log(`  barrier     slowest ${slowest(reports, 'barrierSeconds')}`);
  console.log(
    `  all-reduce  ${ALL_REDUCE_FLOATS} float32 per rank (${mib(ALL_REDUCE_FLOATS * 4)}): exact sum on ` +
      `${count((r) => r.allReduceExact)} ranks, ${identical ? 'bitwise identical' : 'DIFFERENT BITS'} ` +
      `across ranks, slowest ${slowest(reports, 'allReduceSeconds')}; sum of ranks ${reports[0]?.ranksSum} ` +
      `(expected ${(SIZE * (SIZE - 1)) / 2})`,
  );
  console.log(
    `  ring pass   ${mib(RING_WORDS * 4)} from every rank to rank+1: ${count((r) => r.ringIntact)} blocks ` +
      `intact, slowest ${slowest(reports, 'ringSeconds')}; sent per rank ${mib(Math.min(...sent))}` +
      (Math.min(...sent) === Math.max(...sent) ? '' : `..${mib(Math.max(...sent))}`),
  );
  console.log(
    `  waiting     ${meanWait.toFixed(3)} s per rank on average, blocked in collectives and the ring`,
  );
  return reports.length === SIZE && identical && reports.every((r) => r.ok);
}

async function main(): Promise<number> {
  const redis = await startEmbeddedRedis();
  const prefix = rendezvousPrefix(`comm-demo-${process.pid}`, 1);
  const group = new RankGroup({
    script: fileURLToPath(import.meta.url),
    ranks: [...Array(SIZE).keys()],
    args: (rank) => [
      '--rank',
      String(rank),
      '--size',
      String(SIZE),
      '--redis-port',
      String(redis.port),
      '--prefix',
      prefix,
    ],
  });
  const stop = () => void group.stop().finally(() => void redis.stop().finally(() => process.exit(130)));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let ok = false;
  try {
    const exits = await group.exited();
    const reports: RankReport[] = [];
    for (const exit of exits) {
      const done = exit.messages.find((m) => m.done === true) as (RankReport & { done: true }) | undefined;
      if (!done?.ok) {
        const why = done?.error ?? `exit ${exit.code ?? exit.signal} without a report`;
        console.error(`rank ${exit.rank} failed: ${why} ${exit.stderr.trim()}`);
      }
      if (done) reports.push(done);
    }
    ok = summarize(reports, prefix, redis.url);
  } finally {
    await group.stop();
    await redis.stop();
  }
  console.log(ok ? `ok: every check passed; all ${SIZE} rank processes exited and Redis stopped` : 'FAILED');
  return ok ? 0 : 1;
}

async function rankMain(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rank: { type: 'string' },
      size: { type: 'string' },
      'redis-port': { type: 'string' },
      prefix: { type: 'string' },
    },
  });
  exitWithParent();
  const rank = Number(values.rank);
  try {
    const result = await runRank(
      rank,
      Number(values.size),
      Number(values['redis-port']),
      values.prefix ?? '',
    );
    report({ done: true, ...result });
  } catch (e) {
    report({ done: true, rank, ok: false, error: (e as Error).message });
  }
  finish(0);
}

if (process.argv.includes('--rank')) {
  await rankMain();
} else {
  process.exitCode = await main();
}
