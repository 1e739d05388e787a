// One rank of a comm test: `node dist/test/comm/rank-main.js --scenario NAME --rank R --size N
// --redis-port P --prefix X --timeout-ms T [--value V] [--victim V]`. It reports JSON lines on stdout
// (events while it runs, then one {done: true, ok, ...}) and checks what it can check itself; the test
// compares across ranks. It exits when the test process goes away.
import { createHash, pbkdf2 } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';

import { createCommunicator, ringPeers, type Communicator } from '../../worker-native/comm.js';
import { exitWithParent, finish, report, type RankMessage } from '../../worker-native/host/rank-processes.js';

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string' },
    rank: { type: 'string' },
    size: { type: 'string' },
    'redis-port': { type: 'string' },
    prefix: { type: 'string' },
    'timeout-ms': { type: 'string' },
    value: { type: 'string', default: '0' },
    victim: { type: 'string', default: '-1' },
  },
});
const rank = Number(args.rank);
const size = Number(args.size);
const victim = Number(args.victim);

/** Deterministic pseudo-random numbers in [-1, 1): any rank can regenerate any other rank's data. */
function randomValues(seed: number, n: number): Float64Array {
  let state = (seed * 0x9e3779b9 + 0x7f4a7c15) >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

const sha256 = (data: ArrayBufferView) =>
  createHash('sha256')
    .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    .digest('hex');

/** A block that says where it came from: element i of rank r's block is r·2^24 + i. */
function originBlock(origin: number, n: number): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => origin * 2 ** 24 + i);
}
function blockOrigin(block: Uint32Array): number {
  const origin = Math.floor(block[0]! / 2 ** 24);
  return block.every((v, i) => v === origin * 2 ** 24 + i) ? origin : -1;
}

type Scenario = (comm: Communicator) => Promise<RankMessage>;

/** When the operation whose failure a rank reports started (reset by the scenarios that fail on purpose). */
let phaseStart = performance.now();

const scenarios: Record<string, Scenario> = {
  // Exact sums of float32 values that add without rounding, and float32/float64 sums of random values
  // within the rounding bound of N-1 additions; hashes let the test check every rank got the same bits.
  async allreduce(comm) {
    await comm.barrier();
    const n = 10_007; // prime: the ring's chunks are uneven
    const triangle = (size * (size + 1)) / 2;
    const exact = Float32Array.from({ length: n }, (_, i) => (((i % 251) - 125) / 8) * (rank + 1));
    await comm.allReduceSum(exact);
    let exactWrong = 0;
    for (let i = 0; i < n; i++) if (exact[i] !== (((i % 251) - 125) / 8) * triangle) exactWrong++;

    const ranks = [...Array(size).keys()];
    const reference = new Float64Array(n);
    const absSum = new Float64Array(n);
    for (const r of ranks) {
      const v = randomValues(r, n);
      for (let i = 0; i < n; i++) {
        reference[i] = reference[i]! + v[i]!;
        absSum[i] = absSum[i]! + Math.abs(v[i]!);
      }
    }
    const f64 = randomValues(rank, n);
    const f32 = Float32Array.from(f64);
    await comm.allReduceSum(f64);
    await comm.allReduceSum(f32);
    // Each element is rounded once per addition: |error| <= (N-1)·eps·Σ|x| (+ the inputs' own rounding
    // to float32, also <= eps·Σ|x|).
    let f64Worst = 0;
    let f32Worst = 0;
    for (let i = 0; i < n; i++) {
      f64Worst = Math.max(
        f64Worst,
        Math.abs(f64[i]! - reference[i]!) / ((size - 1) * 2 ** -52 * absSum[i]! || 1),
      );
      f32Worst = Math.max(f32Worst, Math.abs(f32[i]! - reference[i]!) / (size * 2 ** -23 * absSum[i]! || 1));
    }
    // Collectives called without awaiting each other still reach every rank in call order: four
    // same-length all-reduces whose sums differ, and a barrier among them.
    const inFlight = [1, 2, 3, 4].map((k) => new Float64Array(64).fill(k * (rank + 1)));
    await Promise.all([
      comm.allReduceSum(inFlight[0]!),
      comm.allReduceSum(inFlight[1]!),
      comm.barrier(),
      comm.allReduceSum(inFlight[2]!),
      comm.allReduceSum(inFlight[3]!),
    ]);
    const inFlightSums = inFlight.map((a) => (a.every((v) => v === a[0]) ? a[0] : NaN));
    return {
      inFlightSums,
      exactWrong,
      exactFirst: exact[1],
      f64ErrorOverBound: f64Worst,
      f32ErrorOverBound: f32Worst,
      hashes: [sha256(exact), sha256(f64), sha256(f32)],
    };
  },

  // One exchange with blocking send/recv, then a full rotation with isend/irecv: after N-1 steps every
  // rank has held every other rank's block, arriving in ring order.
  async ring(comm) {
    const { next, prev } = ringPeers(rank, size);
    const n = 262_144; // 1 MiB per block
    const mine = originBlock(rank, n);
    const first = new Uint32Array(n);
    await Promise.all([comm.send(next, mine, 7), comm.recv(prev, first, 7)]);
    const origins: number[] = [];
    let current = mine;
    for (let step = 1; step < size; step++) {
      const incoming = new Uint32Array(n);
      const recv = comm.irecv(prev, incoming, step);
      const send = comm.isend(next, current, step);
      await Promise.all([recv.wait(), send.wait()]);
      origins.push(blockOrigin(incoming));
      current = incoming;
    }
    return { firstOrigin: blockOrigin(first), origins, blockBytes: mine.byteLength, stats: comm.stats() };
  },

  // The caller keeps computing while a transfer is pending. Data from prev only leaves prev after this
  // rank did 3 units of work and said so ("ready", tag 2), so the receive settles after those units:
  // the event loop and the caller ran while it was pending.
  async overlap(comm) {
    const { next, prev } = ringPeers(rank, size);
    const inbox = new Uint32Array(65_536);
    let units = 0;
    let settledAtUnit = -1;
    const received = comm
      .irecv(prev, inbox, 1)
      .wait()
      .then(() => (settledAtUnit = units));
    const nextReady = comm.irecv(next, new Uint8Array(1), 2);
    const sent = nextReady.wait().then(() => comm.isend(next, originBlock(rank, inbox.length), 1).wait());
    const scratch = randomValues(rank, 4096);
    let checksum = 0;
    const work = async () => {
      for (const v of scratch) checksum += v * v;
      units++;
      await yieldToLoop();
    };
    for (let i = 0; i < 3; i++) await work();
    const ready = comm.isend(prev, new Uint8Array([1]), 2).wait();
    while (settledAtUnit < 0 && units < 1_000_000) await work();
    await Promise.all([received, sent, ready]);
    return { settledAtUnit, units, inboxOrigin: blockOrigin(inbox), checksum };
  },

  // Pending waits must not hold libuv pool threads: rank 0 waits on 8 receives (the pool has 4 threads)
  // while 4 pbkdf2 jobs run on the pool; rank 1 sends only after those finished.
  async pool(comm) {
    const messages = 8;
    if (rank === 0) {
      const inboxes = Array.from({ length: messages }, () => new Uint32Array(1024));
      const waits = inboxes.map((inbox, k) => comm.irecv(1, inbox, 10 + k).wait());
      const hash = promisify(pbkdf2);
      await Promise.all([0, 1, 2, 3].map((k) => hash(`job ${k}`, 'salt', 2000, 32, 'sha256')));
      await comm.send(1, new Uint8Array([1]), 2);
      await Promise.all(waits);
      return { origins: inboxes.map(blockOrigin), threadpool: process.env.UV_THREADPOOL_SIZE ?? 'default' };
    }
    await comm.recv(0, new Uint8Array(1), 2);
    await Promise.all(
      Array.from({ length: messages }, (_, k) => comm.send(0, originBlock(100 + k, 1024), 10 + k)),
    );
    return {};
  },

  async connect(comm) {
    const value = new Float64Array([Number(args.value)]);
    await comm.allReduceSum(value);
    return { sum: value[0], prefix: comm.prefix };
  },

  // The victim stops taking part and is killed by the test; the others are inside an all-reduce.
  async dies(comm) {
    await comm.barrier();
    if (rank === victim) {
      report({ event: 'idle' });
      await new Promise(() => {}); // killed by the test
    }
    report({ event: 'entering' });
    phaseStart = performance.now();
    await comm.allReduceSum(new Float32Array(65_536));
    return {};
  },

  // The same with a receive from the victim.
  async 'dies-recv'(comm) {
    await comm.barrier();
    if (rank === victim) {
      report({ event: 'idle' });
      await new Promise(() => {});
    }
    report({ event: 'entering' });
    phaseStart = performance.now();
    await comm.recv(victim, new Uint8Array(4096), 5);
    return {};
  },

  // A send and a recv that disagree on the size: both time out (they never match) instead of gloo
  // aborting the process; afterwards the communicator refuses further work, quoting the first failure.
  async mismatch(comm) {
    let error = '';
    phaseStart = performance.now();
    try {
      if (rank === 0) await comm.send(1, new Uint8Array(16), 3);
      else await comm.recv(0, new Uint8Array(32), 3);
    } catch (e) {
      error = (e as Error).message;
    }
    const elapsedMs = performance.now() - phaseStart;
    let after = '';
    try {
      await comm.barrier();
    } catch (e) {
      after = (e as Error).message;
    }
    return { error, after, elapsedMs };
  },
};

// Rank 0 posts a receive and lets go of it without waiting. Once the garbage collector took it, the
// transfer is abandoned: the communicator says so on the next call instead of letting the stream to
// rank 1 fall out of step.
scenarios.dropped = async (comm) => {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with --expose-gc');
  await comm.barrier();
  let collections = 0;
  if (rank === 0) {
    (() => void comm.irecv(1, new Float64Array(1), 9))();
    while (comm.failure() === null && collections < 50) {
      collect();
      collections++;
      await yieldToLoop();
    }
  }
  const failure = comm.failure();
  let after = '';
  try {
    await comm.barrier();
  } catch (e) {
    after = (e as Error).message;
  }
  return { failure, after, collections };
};

async function main(): Promise<void> {
  exitWithParent();
  const scenario = scenarios[args.scenario ?? ''];
  if (!scenario) throw new Error(`unknown --scenario '${args.scenario}'`);
  let comm: Communicator | undefined;
  phaseStart = performance.now();
  try {
    comm = await createCommunicator({
      rank,
      size,
      redisPort: Number(args['redis-port']),
      prefix: args.prefix ?? '',
      timeoutMs: Number(args['timeout-ms']),
    });
    report({ event: 'connected' });
    const result = await scenario(comm);
    report({ done: true, ok: true, rank, ...result });
  } catch (e) {
    report({
      done: true,
      ok: false,
      rank,
      error: (e as Error).message,
      elapsedMs: performance.now() - phaseStart,
    });
  }
  await comm?.close();
  finish(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`rank ${rank}: ${(e as Error).stack ?? String(e)}\n`);
  finish(1);
});
