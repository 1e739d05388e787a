// Rendezvous on Redis: missing ranks are named, jobs and attempts are kept apart by their prefix.
import test from 'ava';

import { rendezvousPrefix } from '../../core/rank-launch.js';
import { useRedis } from '../helpers/redis.js';
import { finished, runScenario, startScenario } from './ranks.js';

const redis = useRedis(test);
// A bound on how late a failure may be reported past its timeout: process scheduling on 2 shared
// cores, not the communicator, is what this slack covers.
const slackMs = 5000;

test.serial(
  'a missing rank makes the rendezvous fail within its timeout, naming the missing ranks',
  async (t) => {
    const prefix = rendezvousPrefix('test-missing', 1);
    const timeoutMs = 2000;
    const group = startScenario(t, {
      scenario: 'connect',
      size: 4,
      ranks: [0, 1],
      redisPort: redis().port,
      prefix,
      timeoutMs,
    });
    const reports = await finished(t, group);
    t.is(reports.size, 2);
    for (const r of reports.values()) {
      t.false(r.ok);
      t.is(r.error, `rendezvous '${prefix}' timed out after 2.0 s: ranks 2, 3 of 4 never arrived`);
      t.true(r.elapsedMs! >= timeoutMs - 50, `gave up after ${r.elapsedMs} ms`);
      t.true(r.elapsedMs! <= timeoutMs + slackMs, `gave up after ${r.elapsedMs} ms`);
    }
  },
);

test.serial('two jobs rendezvous at once on one Redis without meeting', async (t) => {
  const common = { scenario: 'connect', size: 2, redisPort: redis().port, timeoutMs: 30_000 };
  // Each job sums its own values: 1+2 and 10+20. Ranks that met the other job would sum differently.
  const [a, b] = await Promise.all([
    runScenario(t, {
      ...common,
      prefix: rendezvousPrefix('job-a', 1),
      extra: (r) => ['--value', String(r + 1)],
    }),
    runScenario(t, {
      ...common,
      prefix: rendezvousPrefix('job-b', 1),
      extra: (r) => ['--value', String(10 * (r + 1))],
    }),
  ]);
  t.deepEqual(
    a.map((r) => [r.sum, r.prefix]),
    [
      [3, 'longctx/job-a/1'],
      [3, 'longctx/job-a/1'],
    ],
  );
  t.deepEqual(
    b.map((r) => [r.sum, r.prefix]),
    [
      [30, 'longctx/job-b/1'],
      [30, 'longctx/job-b/1'],
    ],
  );
});

test.serial('a restarted job rendezvous under its next attempt; the old prefix is refused', async (t) => {
  const port = redis().port;
  // Attempt 1 fails: rank 1 never comes. Its rank 0 leaves its keys behind in Redis.
  const first = await finished(
    t,
    startScenario(t, {
      scenario: 'connect',
      size: 2,
      ranks: [0],
      redisPort: port,
      prefix: rendezvousPrefix('job-r', 1),
      timeoutMs: 1000,
    }),
  );
  t.is(first.get(0)!.error, "rendezvous 'longctx/job-r/1' timed out after 1.0 s: rank 1 of 2 never arrived");
  // Attempt 2 connects and works despite attempt 1's keys.
  const second = await runScenario(t, {
    scenario: 'connect',
    size: 2,
    redisPort: port,
    prefix: rendezvousPrefix('job-r', 2),
    timeoutMs: 30_000,
    extra: (r) => ['--value', String(r + 5)],
  });
  t.deepEqual(
    second.map((r) => r.sum),
    [11, 11],
  );
  // Reusing attempt 1's prefix would read its stale addresses: refused, saying why.
  const reused = await finished(
    t,
    startScenario(t, {
      scenario: 'connect',
      size: 2,
      ranks: [0],
      redisPort: port,
      prefix: rendezvousPrefix('job-r', 1),
      timeoutMs: 1000,
    }),
  );
  t.regex(reused.get(0)!.error!, /^rendezvous 'longctx\/job-r\/1': rank 0 already joined it; .*new one/);
});
