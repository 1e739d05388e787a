// Gang supervision with real processes (the rank fixture): a gang ends whole, and no process of
// any rank — nor anything a rank started — survives it.
import test, { type ExecutionContext } from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { Gang } from '../../cluster/gang.js';
import { groupAlive, processAlive } from '../../cluster/process-groups.js';
import type { RankLaunch } from '../../core/rank-launch.js';
import type { RankPlan } from '../fixtures/rank.js';
import { RANK_FIXTURE, tempDir } from '../helpers/control.js';

interface Fixture {
  runDir: string;
  launch(plan: RankPlan, world: number, graceMs?: number): Promise<Gang>;
  /** Every pid the ranks recorded: the rank processes and their children. */
  pids(world: number): number[];
}

async function fixture(t: ExecutionContext, jobName: string): Promise<Fixture> {
  const dir = await tempDir('gang');
  const gangs: Gang[] = [];
  t.teardown(async () => {
    for (const g of gangs) await g.stop('test teardown');
    await dir.remove();
  });
  const runDir = join(dir.path, jobName);
  await mkdir(join(runDir, 'attempt-1'), { recursive: true });
  const launches = (world: number): RankLaunch[] =>
    Array.from({ length: world }, (_, rank) => ({
      jobId: jobName,
      jobName,
      attempt: 1,
      rank,
      worldSize: world,
      node: 'local',
      deviceKind: 'cpu',
      deviceIndex: rank,
      deviceBudgetBytes: 1 << 20,
      threads: 1,
      rendezvous: { redisUrl: 'redis://127.0.0.1:1', prefix: `longctx/${jobName}/1`, bindHost: '127.0.0.1' },
      telemetry: { address: '127.0.0.1:1', token: 'secret' },
      runDir,
      checkpointsDir: join(runDir, 'checkpoints'),
      specFile: join(runDir, 'spec.json'),
      agentPid: process.pid,
    }));
  return {
    runDir,
    launch: async (plan, world, graceMs = 300) => {
      writeFileSync(join(dir.path, `${jobName}.json`), JSON.stringify(plan));
      const gang = await Gang.launch(launches(world), {
        command: [process.execPath, RANK_FIXTURE],
        env: { ...process.env, RANK_FIXTURE_PLANS: dir.path },
        logDir: join(runDir, 'logs'),
        launchDir: join(runDir, 'attempt-1'),
        graceMs,
      });
      gangs.push(gang);
      return gang;
    },
    pids: (world) =>
      Array.from({ length: world }, (_, rank) => {
        const file = join(runDir, 'attempt-1', `rank-${rank}.pids`);
        const { pid, childPid } = JSON.parse(readFileSync(file, 'utf8')) as {
          pid: number;
          childPid?: number;
        };
        return childPid === undefined ? [pid] : [pid, childPid];
      }).flat(),
  };
}

async function ranksStarted(f: Fixture, world: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      f.pids(world);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error('ranks did not record their pids');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function assertNothingSurvives(t: ExecutionContext, gang: Gang, pids: number[]): void {
  for (const pgid of gang.pgids()) t.false(groupAlive(pgid), `process group ${pgid} is empty`);
  for (const pid of pids) t.false(processAlive(pid), `process ${pid} is gone`);
  t.deepEqual(gang.liveGroups(), []);
}

test('a gang whose ranks all exit 0 succeeds, and what the ranks started is cleared', async (t) => {
  const f = await fixture(t, 'ok');
  const gang = await f.launch({ runMs: 50, spawnChild: true }, 3);
  t.deepEqual(await gang.done, { kind: 'succeeded' });
  t.is(gang.ranks.length, 3);
  for (const rank of gang.ranks) {
    t.is(rank.exitCode, 0);
    t.is(rank.pgid, rank.pid, 'each rank leads its own process group');
    const log = readFileSync(join(f.runDir, 'logs', `rank-${rank.rank}.log`), 'utf8');
    t.regex(log, new RegExp(`^=== .* job ok attempt 1 rank ${rank.rank}/3 on local device ${rank.rank}`));
    const launch = JSON.parse(/launch (.*)/.exec(log)![1]!) as RankLaunch;
    t.is(launch.rank, rank.rank);
    t.is(launch.worldSize, 3);
    t.is(launch.rendezvous.prefix, 'longctx/ok/1');
    t.regex(log, new RegExp(`rank ${rank.rank} done`));
  }
  // Each rank left a `sleep 300` child behind in its group; the gang killed them.
  const pids = f.pids(3);
  t.is(pids.length, 6);
  assertNothingSurvives(t, gang, pids);
});

test('one rank exiting non-zero stops the whole gang and no process of it survives', async (t) => {
  const f = await fixture(t, 'fail');
  const gang = await f.launch(
    { runMs: 60_000, spawnChild: true, fail: { rank: 2, attempts: [1], code: 3, afterMs: 300 } },
    4,
  );
  const result = await gang.done;
  t.like(result, { kind: 'failed', rank: 2, exitCode: 3, signal: null });
  t.is(
    result.kind === 'failed' && result.message,
    'rank 2 exited with code 3: rank 2 fails on purpose with code 3',
  );
  for (const rank of gang.ranks.filter((r) => r.rank !== 2)) t.is(rank.signal, 'SIGTERM');
  assertNothingSurvives(t, gang, f.pids(4));
});

test('a rank that ignores SIGTERM is killed after the grace period', async (t) => {
  const f = await fixture(t, 'stubborn');
  const gang = await f.launch({ runMs: 60_000, ignoreSigterm: true, spawnChild: true }, 2, 200);
  await ranksStarted(f, 2);
  const result = await gang.stop('the watchdog says rank 1 hangs');
  t.deepEqual(result, { kind: 'stopped', reason: 'the watchdog says rank 1 hangs' });
  for (const rank of gang.ranks) t.is(rank.signal, 'SIGKILL');
  t.regex(readFileSync(join(f.runDir, 'logs', 'rank-0.log'), 'utf8'), /SIGTERM received and ignored/);
  assertNothingSurvives(t, gang, f.pids(2));
  t.deepEqual(await gang.stop('again'), result, 'stop is idempotent');
});

test('a rank killed by a signal fails the gang, naming the signal', async (t) => {
  const f = await fixture(t, 'killed');
  const gang = await f.launch({ runMs: 60_000 }, 3);
  await ranksStarted(f, 3);
  process.kill(gang.ranks[1]!.pid, 'SIGKILL');
  const result = await gang.done;
  t.like(result, { kind: 'failed', rank: 1, exitCode: null, signal: 'SIGKILL' });
  t.regex(result.kind === 'failed' ? result.message : '', /^rank 1 was killed by SIGKILL/);
  assertNothingSurvives(t, gang, f.pids(3));
});

test('a worker command that cannot start is an error naming the rank and the command', async (t) => {
  const dir = await tempDir('gang-missing');
  t.teardown(() => dir.remove());
  const error = await t.throwsAsync(
    Gang.launch(
      [
        {
          jobId: 'j',
          jobName: 'j',
          attempt: 1,
          rank: 0,
          worldSize: 1,
          node: 'local',
          deviceKind: 'cpu',
          deviceIndex: 0,
          deviceBudgetBytes: 1,
          threads: 1,
          rendezvous: { redisUrl: 'redis://x', prefix: 'longctx/j/1', bindHost: '127.0.0.1' },
          telemetry: { address: 'x:1', token: 't' },
          runDir: dir.path,
          checkpointsDir: dir.path,
          specFile: join(dir.path, 'spec.json'),
          agentPid: process.pid,
        },
      ],
      {
        command: ['/nonexistent/worker-main'],
        logDir: join(dir.path, 'logs'),
        launchDir: join(dir.path, 'attempt-1'),
        graceMs: 100,
      },
    ),
  );
  t.regex(
    error.message,
    /^rank 0: cannot start '\/nonexistent\/worker-main': spawn \/nonexistent\/worker-main ENOENT/,
  );
});

test('a rank failing while the gang is still starting stops the ranks started after it', async (t) => {
  const dir = await tempDir('gang-early');
  t.teardown(() => dir.remove());
  const world = 6;
  const launches: RankLaunch[] = Array.from({ length: world }, (_, rank) => ({
    jobId: 'early',
    jobName: 'early',
    attempt: 1,
    rank,
    worldSize: world,
    node: 'local',
    deviceKind: 'cpu',
    deviceIndex: rank,
    deviceBudgetBytes: 1,
    threads: 1,
    rendezvous: { redisUrl: 'redis://x', prefix: 'longctx/early/1', bindHost: '127.0.0.1' },
    telemetry: { address: 'x:1', token: 't' },
    runDir: dir.path,
    checkpointsDir: dir.path,
    specFile: join(dir.path, 'spec.json'),
    agentPid: process.pid,
  }));
  // Rank 0 fails at once (a shell starts in a millisecond), usually before the last ranks exist.
  const gang = await Gang.launch(launches, {
    command: ['sh', '-c', 'if [ "$LONGCTX_RANK" = 0 ]; then exit 5; fi; exec sleep 60'],
    logDir: join(dir.path, 'logs'),
    launchDir: join(dir.path, 'attempt-1'),
    graceMs: 200,
  });
  t.teardown(() => gang.stop('teardown').then(() => undefined));
  const result = await gang.done;
  t.like(result, { kind: 'failed', rank: 0, exitCode: 5 });
  for (const rank of gang.ranks.slice(1)) t.is(rank.signal, 'SIGTERM', `rank ${rank.rank} was stopped`);
  t.deepEqual(gang.liveGroups(), []);
});
