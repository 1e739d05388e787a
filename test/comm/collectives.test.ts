// Collectives and point-to-point transfers between 4 real rank processes over gloo on loopback.
import test from 'ava';

import { rendezvousPrefix } from '../../core/rank-launch.js';
import { useRedis } from '../helpers/redis.js';
import { runScenario } from './ranks.js';

const redis = useRedis(test);
const size = 4;
// Generous: 4 node processes starting at once on 2 shared cores; nothing here waits on it.
const timeoutMs = 30_000;

test.serial('all-reduce gives the exact sum, bitwise identical on every rank', async (t) => {
  const reports = await runScenario(t, {
    scenario: 'allreduce',
    size,
    redisPort: redis().port,
    prefix: rendezvousPrefix('test-allreduce', 1),
    timeoutMs,
  });
  t.is(reports.length, size);
  for (const r of reports) {
    // Values in steps of 1/8 add without rounding: the sum must be exact.
    t.is(r.exactWrong, 0, `rank ${r.rank}: elements differing from the exact sum`);
    t.is(r.exactFirst, (-124 / 8) * 10); // element 1: (1 - 125)/8 · (1+2+3+4)
    // Random values: within the rounding bound of the N-1 additions (ratio to the bound <= 1).
    t.true((r.f64ErrorOverBound as number) <= 1, `float64 error ${String(r.f64ErrorOverBound)} x bound`);
    t.true((r.f32ErrorOverBound as number) <= 1, `float32 error ${String(r.f32ErrorOverBound)} x bound`);
    t.deepEqual(r.inFlightSums, [10, 20, 30, 40], 'collectives in flight together were matched out of order');
    t.deepEqual(r.hashes, reports[0]!.hashes, `rank ${r.rank} ended with different bits than rank 0`);
  }
});

test.serial(
  "a ring send/recv delivers each rank's buffer to rank+1, and N-1 steps visit every rank",
  async (t) => {
    const reports = await runScenario(t, {
      scenario: 'ring',
      size,
      redisPort: redis().port,
      prefix: rendezvousPrefix('test-ring', 1),
      timeoutMs,
    });
    for (const r of reports) {
      const prev = (r.rank + size - 1) % size;
      t.is(r.firstOrigin, prev, `rank ${r.rank} received the block of rank ${String(r.firstOrigin)}`);
      // Step s brings the block that started at rank - s.
      t.deepEqual(
        r.origins,
        [1, 2, 3].map((s) => (r.rank - s + size) % size),
      );
      const stats = r.stats as { bytesSent: number; bytesReceived: number; waitSeconds: number };
      // One exchange plus N-1 rotation steps of one 1 MiB block each, counted exactly.
      t.is(stats.bytesSent, size * (r.blockBytes as number));
      t.is(stats.bytesReceived, size * (r.blockBytes as number));
      t.true(stats.waitSeconds > 0);
    }
  },
);

test.serial('an async receive completes while the caller keeps working on the event loop', async (t) => {
  const reports = await runScenario(t, {
    scenario: 'overlap',
    size,
    redisPort: redis().port,
    prefix: rendezvousPrefix('test-overlap', 1),
    timeoutMs,
  });
  for (const r of reports) {
    t.is(r.inboxOrigin, (r.rank + size - 1) % size, `rank ${r.rank} received the wrong block`);
    // The data could only leave prev after this rank finished 3 units of work, each of which yielded
    // to the event loop while the receive was pending; the receive settled after them.
    t.true((r.settledAtUnit as number) >= 3, `settled at unit ${String(r.settledAtUnit)}`);
  }
});

test.serial('pending waits do not occupy the libuv pool', async (t) => {
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE; // the default 4 threads, fewer than the 8 pending receives
  const reports = await runScenario(t, {
    scenario: 'pool',
    size: 2,
    redisPort: redis().port,
    prefix: rendezvousPrefix('test-pool', 1),
    timeoutMs: 10_000,
    env,
  });
  const rank0 = reports.find((r) => r.rank === 0)!;
  t.is(rank0.threadpool, 'default');
  // Had the 8 waits held pool threads, the pbkdf2 jobs would have queued behind them until the waits
  // timed out, and rank 1 (which sends only afterwards) would never have sent these.
  t.deepEqual(rank0.origins, [100, 101, 102, 103, 104, 105, 106, 107]);
});
