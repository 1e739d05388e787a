// The whole control plane with real processes: a scheduler, node agents (in this process, or as
// their own processes through cluster/agent-main.js), and the rank fixture as the worker. Short
// leases, locks and grace periods keep each test to a few seconds.
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';

import { NodeAgent } from '../../cluster/agent.js';
import { killGroupsNow, processAlive } from '../../cluster/process-groups.js';
import type { RankLaunch } from '../../core/rank-launch.js';
import { JobQueue } from '../../control/job-queue.js';
import type { JobRecord, JobState } from '../../control/job-record.js';
import { nodeQueueName } from '../../control/keys.js';
import { Scheduler } from '../../control/scheduler.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import type { RankPlan } from '../fixtures/rank.js';
import {
  AGENT_MAIN,
  connect,
  cpuInventory,
  deletePrefix,
  RANK_FIXTURE,
  spec,
  tempDir,
  testPrefix,
  waitFor,
} from '../helpers/control.js';
import { useRedis } from '../helpers/redis.js';
import { gangSteps } from '../ops/fixtures.js';

const redisServer = useRedis(test);

const TIMINGS = { leaseMs: 1500, lockDurationMs: 1000, stalledIntervalMs: 500, graceMs: 300 };
const BACKOFF = { baseMs: 50, maxMs: 200 };

interface Cluster {
  queue: JobQueue;
  scheduler: Scheduler;
  prefix: string;
  runsDir: string;
  startAgent(node: string, devices: number): Promise<NodeAgent>;
  /** A node agent in its own process (cluster/agent-main.js); resolves once its node is alive. */
  startAgentProcess(node: string, devices: number): Promise<ChildProcess>;
  submit(name: string, devices: number, plan: RankPlan, maxRestarts?: number): Promise<string>;
  job(id: string): Promise<JobRecord>;
  waitForState(id: string, state: JobState, timeoutMs?: number): Promise<JobRecord>;
  /** Pids the ranks of an attempt recorded: rank processes and the children they started. */
  rankPids(id: string, attempt: number): number[];
}

async function cluster(t: ExecutionContext): Promise<Cluster> {
  const prefix = testPrefix(t.title);
  const url = redisServer().url;
  const redis = connect(url);
  const queue = new JobQueue(redis, prefix);
  const connections = [redis];
  const schedulerRedis = connect(url);
  connections.push(schedulerRedis);
  const scheduler = new Scheduler({
    redis: schedulerRedis,
    prefix,
    pollMs: 100,
    backoff: BACKOFF,
    onError: (err) => t.log(`scheduler: ${String(err)}`),
  });
  await scheduler.start();
  const dir = await tempDir('agent');
  const plansDir = join(dir.path, 'plans');
  const runsDir = join(dir.path, 'runs');
  await mkdir(plansDir);
  const agents: NodeAgent[] = [];
  const processes: ChildProcess[] = [];
  const rankPids = (id: string, attempt: number): number[] => {
    const folder = join(runsDir, id, `attempt-${attempt}`);
    if (!existsSync(folder)) return [];
    return readdirSync(folder)
      .filter((f) => f.endsWith('.pids'))
      .flatMap((f) => {
        const { pid, childPid } = JSON.parse(readFileSync(join(folder, f), 'utf8')) as {
          pid: number;
          childPid?: number;
        };
        return childPid === undefined ? [pid] : [pid, childPid];
      });
  };
  t.teardown(async () => {
    // Every step runs even if an earlier one fails, so a failed test still leaves nothing behind.
    const step = async (what: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        t.log(`teardown: ${what}: ${String(err)}`);
      }
    };
    for (const p of processes) {
      await step('agent process', async () => {
        if (p.exitCode === null && p.signalCode === null) {
          p.kill('SIGKILL');
          await new Promise((r) => p.once('exit', r));
        }
      });
    }
    for (const a of agents) await step('agent', () => a.stop('test teardown'));
    await step('scheduler', () => scheduler.stop());
    // Whatever a failed test left running: every rank recorded its pid (its process group).
    await step('leftover ranks', () => {
      if (!existsSync(runsDir)) return;
      for (const id of readdirSync(runsDir)) {
        for (const attempt of readdirSync(join(runsDir, id)).filter((f) => f.startsWith('attempt-'))) {
          const pids = rankPids(id, Number(attempt.slice('attempt-'.length)));
          killGroupsNow(pids);
          for (const pid of pids) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
        }
      }
    });
    await step('queue', () => queue.close());
    await step('redis keys', () => deletePrefix(redis, prefix));
    for (const c of connections) await step('redis connection', () => c.quit());
    await step('temp folder', () => dir.remove());
  });

  const job = async (id: string) => {
    const record = await queue.get(id);
    if (!record) throw new Error(`no job ${id}`);
    return record;
  };
  const nodeAlive = async (node: string) =>
    (await queue.nodes()).find((n) => n.name === node)?.alive === true;
  return {
    queue,
    scheduler,
    prefix,
    runsDir,
    job,
    rankPids,
    startAgent: async (node, devices) => {
      const connection = connect(url);
      connections.push(connection);
      const agent = new NodeAgent({
        redis: connection,
        redisUrl: url,
        prefix,
        inventory: cpuInventory(node, devices),
        telemetryAddress: '127.0.0.1:1',
        workerCommand: [process.execPath, RANK_FIXTURE],
        runsDir,
        env: { RANK_FIXTURE_PLANS: plansDir },
        ...TIMINGS,
        backoff: BACKOFF,
        log: () => undefined,
      });
      agents.push(agent);
      await agent.start();
      return agent;
    },
    startAgentProcess: async (node, devices) => {
      const nodeFile = join(dir.path, `${node}.yaml`);
      writeFileSync(nodeFile, `node: ${node}\nkind: cpu\ndevices: ${devices}\ndevice_memory: 1 GiB\n`);
      const child = spawn(
        process.execPath,
        [
          AGENT_MAIN,
          ...['--redis', url, '--prefix', prefix, '--node-file', nodeFile, '--no-gpu', '--runs', runsDir],
          ...['--telemetry', '127.0.0.1:1', '--lease-ms', String(TIMINGS.leaseMs)],
          ...['--lock-ms', String(TIMINGS.lockDurationMs), '--stalled-ms', String(TIMINGS.stalledIntervalMs)],
          ...['--grace-ms', String(TIMINGS.graceMs), '--backoff-ms', String(BACKOFF.baseMs)],
          ...['--', process.execPath, RANK_FIXTURE],
        ],
        { env: { ...process.env, RANK_FIXTURE_PLANS: plansDir }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      processes.push(child);
      await waitFor(`agent process of ${node} to register`, async () => {
        if (child.exitCode !== null) throw new Error(`agent process exited: ${output}`);
        return nodeAlive(node);
      });
      return child;
    },
    submit: async (name, devices, plan, maxRestarts = 3) => {
      writeFileSync(join(plansDir, `${name}.json`), JSON.stringify(plan));
      const result = await queue.submit(spec(name, devices, { maxRestarts }));
      return result.id;
    },
    waitForState: async (id, state, timeoutMs) => {
      try {
        return await waitFor(
          `job ${id} to be ${state}`,
          async () => {
            const record = await job(id);
            return record.state === state ? record : undefined;
          },
          // Restarts spawn whole gangs again: on 2 loaded cores that can take well over 15 s.
          timeoutMs ?? 40_000,
        );
      } catch (err) {
        const history = (await queue.history(id)).map(
          (e) => `${e.state} ${e.attempt} ${e.node}: ${e.message}`,
        );
        throw new Error(`${(err as Error).message}; history:\n${history.join('\n')}`);
      }
    },
  };
}

function launchOf(c: Cluster, id: string, attempt: number, rank: number): RankLaunch {
  return JSON.parse(
    readFileSync(join(c.runsDir, id, `attempt-${attempt}`, `rank-${rank}.json`), 'utf8'),
  ) as RankLaunch;
}

async function heldDevices(c: Cluster, node: string): Promise<number> {
  return (await c.queue.nodes()).find((n) => n.name === node)!.heldBy.size;
}

function assertAllDead(t: ExecutionContext, pids: number[]): void {
  t.true(pids.length > 0, 'the ranks recorded their pids');
  for (const pid of pids) t.false(processAlive(pid), `process ${pid} survived`);
}

test('a placed job runs one rank per allocated device and succeeds', async (t) => {
  const c = await cluster(t);
  await c.startAgent('n4', 4);
  const id = await c.submit('ok', 2, { runMs: 100 });
  const done = await c.waitForState(id, 'SUCCEEDED');
  t.is(done.attempt, 1);
  t.is(done.restarts, 0);
  t.is(done.node, 'n4');
  t.deepEqual(
    (await c.queue.history(id)).map((e) => e.state),
    ['QUEUED', 'PLACED', 'RUNNING', 'SUCCEEDED'],
  );
  const placed = (await c.queue.history(id)).find((e) => e.state === 'PLACED')!;
  const [r0, r1] = [launchOf(c, id, 1, 0), launchOf(c, id, 1, 1)];
  t.deepEqual([r0.deviceIndex, r1.deviceIndex], placed.devices);
  t.like(r0, {
    jobId: id,
    jobName: 'ok',
    attempt: 1,
    rank: 0,
    worldSize: 2,
    node: 'n4',
    deviceKind: 'cpu',
    deviceBudgetBytes: 1 << 30,
    rendezvous: { redisUrl: redisServer().url, prefix: `longctx/${id}/1` },
    runDir: join(c.runsDir, id),
  });
  t.true(r0.telemetry.token.length >= 32);
  t.is(r1.telemetry.token, r0.telemetry.token, 'one token per attempt');
  t.is(done.token, undefined, 'revoked once the attempt ended');
  // The ranks got the same launch through the environment (the fixture prints what it read).
  const log = readFileSync(join(c.runsDir, id, 'logs', 'rank-1.log'), 'utf8');
  t.deepEqual(JSON.parse(/launch (.*)/.exec(log)![1]!), { ...r1 });
  t.is(await heldDevices(c, 'n4'), 0);
});

test('the node queue entry shows the running job’s progress and stays as history once it ends', async (t) => {
  const c = await cluster(t);
  await c.startAgent('np', 2);
  const id = await c.submit('progress', 2, { runMs: 4000 });
  await c.waitForState(id, 'RUNNING');
  const connection = connect(redisServer().url);
  const nodeQueue = new Queue(nodeQueueName('np'), { connection, prefix: c.queue.store.keys.prefix });
  t.teardown(async () => {
    await nodeQueue.close();
    connection.disconnect();
  });
  // Steps as the Telemetry service records them from the ranks.
  const history = new TelemetryHistory(connection, c.queue.store.keys);
  for (const step of gangSteps(1, 2)) await history.recordStep(id, 1, step);
  const progress = await waitFor('the progress on the node queue entry', async () => {
    const entry = await nodeQueue.getJob(`${id}.1`);
    const p = entry?.progress as { step?: number } | undefined;
    return p?.step === 1 ? p : undefined;
  });
  // The test spec has 1 step; gangSteps' loss is 5.5 − 0.1·step.
  t.deepEqual(progress, { step: 1, totalSteps: 1, loss: 5.4, attempt: 1, percent: 100 });
  await c.waitForState(id, 'SUCCEEDED');
  const finished = await waitFor('the finished entry', async () =>
    (await nodeQueue.getCompleted()).find((j) => j.id === `${id}.1`),
  );
  // 'stale' when BullMQ handed the entry out again after this file's 1 s lock lapsed under load
  // (the attempt guards end such a second delivery at once); the job itself SUCCEEDED above.
  t.true(['succeeded', 'stale'].includes(String(finished.returnvalue)), String(finished.returnvalue));
  t.like(finished.progress, { step: 1, totalSteps: 1 });
});

test('a rank exiting non-zero stops its gang; the job restarts as a new attempt and succeeds', async (t) => {
  const c = await cluster(t);
  await c.startAgent('n4', 4);
  const id = await c.submit('flaky', 4, {
    runMs: 150,
    runMsByAttempt: { '1': 60_000 },
    spawnChild: true,
    fail: { rank: 1, attempts: [1], code: 7, afterMs: 300 },
  });
  const done = await c.waitForState(id, 'SUCCEEDED');
  t.is(done.attempt, 2);
  t.is(done.restarts, 1);
  const recovering = (await c.queue.history(id)).find((e) => e.state === 'RECOVERING')!;
  t.regex(
    recovering.message,
    /^rank 1 exited with code 7: rank 1 fails on purpose with code 7; restart 1 of 3 from the newest valid checkpoint after 50 ms$/,
  );
  // Every process of the first gang — ranks and the children they started — is gone.
  assertAllDead(t, c.rankPids(id, 1));
  t.is(launchOf(c, id, 2, 0).rendezvous.prefix, `longctx/${id}/2`);
  t.not(launchOf(c, id, 2, 0).telemetry.token, launchOf(c, id, 1, 0).telemetry.token);
});

test('a gang bigger than every node: each agent runs its share, and a rank failing on one node ends the gang on both', async (t) => {
  const c = await cluster(t);
  const [a, b] = [await c.startAgent('na', 2), await c.startAgent('nb', 2)];
  const id = await c.submit('wide', 4, {
    runMs: 150,
    runMsByAttempt: { '1': 60_000 },
    spawnChild: true,
    fail: { rank: 3, attempts: [1], code: 7, afterMs: 1500 },
  });
  await c.waitForState(id, 'RUNNING');
  await waitFor('all ranks to start', () => c.rankPids(id, 1).length === 8);
  t.deepEqual(
    [a, b].map((agent) => agent.gangs().map((g) => [g.jobId, g.attempt, g.ranks.map((r) => r.rank)])),
    [[[id, 1, [0, 1]]], [[id, 1, [2, 3]]]],
    'each node runs its own share of the ranks',
  );
  for (const rank of [0, 1, 2, 3]) {
    t.like(launchOf(c, id, 1, rank), {
      rank,
      worldSize: 4,
      node: rank < 2 ? 'na' : 'nb',
      rendezvous: { prefix: `longctx/${id}/1`, bindHost: '127.0.0.1' },
    });
  }
  const done = await c.waitForState(id, 'SUCCEEDED');
  t.is(done.attempt, 2);
  t.is(done.restarts, 1);
  const recovering = (await c.queue.history(id)).find((e) => e.state === 'RECOVERING')!;
  t.regex(
    recovering.message,
    /^rank 3 exited with code 7: rank 3 fails on purpose with code 7; restart 1 of 3/,
  );
  // The share on na (its ranks would have run 60 s) went with the failing one on nb.
  assertAllDead(t, c.rankPids(id, 1));
  const rank0 = readFileSync(join(c.runsDir, id, 'logs', 'rank-0.log'), 'utf8');
  t.is(rank0.match(/rank 0 done/g)?.length, 1, 'rank 0 finished in attempt 2 only');
  t.deepEqual(
    done.shares.map((sh) => sh.node),
    ['na', 'nb'],
  );
  t.is(await heldDevices(c, 'na'), 0);
  t.is(await heldDevices(c, 'nb'), 0);
  t.deepEqual([...a.gangs(), ...b.gangs()], []);
});

test('cancelling a gang that spans nodes stops it on every node', async (t) => {
  const c = await cluster(t);
  const [a, b] = [await c.startAgent('na', 2), await c.startAgent('nb', 1)];
  const id = await c.submit('wide-long', 3, { runMs: 60_000 });
  await c.waitForState(id, 'RUNNING');
  await waitFor('all ranks to start', () => c.rankPids(id, 1).length === 3);
  t.true((await c.queue.cancel(id)).cancelled);
  const cancelled = await c.waitForState(id, 'CANCELLED');
  t.is(cancelled.attempt, 1);
  assertAllDead(t, c.rankPids(id, 1));
  t.is(await heldDevices(c, 'na'), 0);
  t.is(await heldDevices(c, 'nb'), 0);
  t.deepEqual([...a.gangs(), ...b.gangs()], []);
});

test('a job whose restarts are used up fails, naming the rank and the exit code', async (t) => {
  const c = await cluster(t);
  await c.startAgent('n2', 2);
  const id = await c.submit(
    'doomed',
    2,
    { runMs: 60_000, fail: { rank: 0, attempts: [1], code: 9, afterMs: 100 } },
    0,
  );
  const failed = await c.waitForState(id, 'FAILED');
  t.regex(failed.message, /^rank 0 exited with code 9: .*; no restarts left \(max_restarts 0\)$/);
  t.is(failed.restarts, 0);
  assertAllDead(t, c.rankPids(id, 1));
  t.is(await heldDevices(c, 'n2'), 0);
});

test('cancelling a running job stops its gang and frees its devices', async (t) => {
  const c = await cluster(t);
  const agent = await c.startAgent('n4', 4);
  const id = await c.submit('long', 3, { runMs: 60_000, spawnChild: true });
  await c.waitForState(id, 'RUNNING');
  await waitFor('all ranks to start', () => c.rankPids(id, 1).length === 6);
  t.is(agent.gangs().length, 1);
  t.is(await heldDevices(c, 'n4'), 3);
  const result = await c.queue.cancel(id);
  t.true(result.cancelled);
  t.is(result.previousState, 'RUNNING');
  const cancelled = await c.waitForState(id, 'CANCELLED');
  t.regex(cancelled.message, /cancelled/);
  assertAllDead(t, c.rankPids(id, 1));
  t.is(await heldDevices(c, 'n4'), 0);
  t.deepEqual(agent.gangs(), []);
  t.is(cancelled.attempt, 1, 'never placed again');
});

test('the watchdog stopping a hung gang sends the job to recovery', async (t) => {
  const c = await cluster(t);
  const agent = await c.startAgent('n2', 2);
  const id = await c.submit('hangs', 2, { runMs: 100, runMsByAttempt: { '1': 60_000 } });
  await c.waitForState(id, 'RUNNING');
  await waitFor('all ranks to start', () => c.rankPids(id, 1).length === 2);
  t.true(await agent.stopGang(id, 'no step for 600 s'));
  t.false(await agent.stopGang('no-such-job', 'x'));
  const done = await c.waitForState(id, 'SUCCEEDED');
  t.is(done.attempt, 2);
  const recovering = (await c.queue.history(id)).find((e) => e.state === 'RECOVERING')!;
  t.regex(recovering.message, /^stopped by the watchdog: no step for 600 s; restart 1 of 3/);
  assertAllDead(t, c.rankPids(id, 1));
});

test('an agent killed mid-job: its job comes back on the same node, and the next agent reaps the old ranks', async (t) => {
  const c = await cluster(t);
  const agentProcess = await c.startAgentProcess('pa', 2);
  const id = await c.submit('survivor', 2, { runMs: 150, runMsByAttempt: { '1': 60_000 }, spawnChild: true });
  await c.waitForState(id, 'RUNNING');
  await waitFor('all ranks to start', () => c.rankPids(id, 1).length === 4);
  agentProcess.kill('SIGKILL');
  await new Promise((r) => agentProcess.once('exit', r));
  const orphans = c.rankPids(id, 1);
  t.true(orphans.every(processAlive), 'SIGKILL gave the agent no chance to stop its ranks');

  // A new agent for the node: it waits for the old lease to lapse, kills the old ranks, and the
  // attempt the dead agent held comes back (BullMQ's stalled check or the scheduler's sweep).
  await c.startAgent('pa', 2);
  assertAllDead(t, orphans);
  const done = await c.waitForState(id, 'SUCCEEDED');
  t.is(done.attempt, 2);
  t.is(done.node, 'pa');
  t.is(done.restarts, 1);
  const recovering = (await c.queue.history(id)).find((e) => e.state === 'RECOVERING')!;
  t.regex(recovering.message, /^the agent of node pa was lost during attempt 1/);
});

test('with no scheduler running, BullMQ’s stalled-job check brings a dead agent’s job back to the next agent', async (t) => {
  const c = await cluster(t);
  const agentProcess = await c.startAgentProcess('ps', 2);
  const id = await c.submit('stalled', 2, { runMs: 150, runMsByAttempt: { '1': 60_000 } });
  await c.waitForState(id, 'RUNNING');
  await waitFor('all ranks to start', () => c.rankPids(id, 1).length === 2);
  await c.scheduler.stop(); // no dead-node sweep: only the node's queue can notice
  agentProcess.kill('SIGKILL');
  await new Promise((r) => agentProcess.once('exit', r));
  const agent = await c.startAgent('ps', 2);
  // The new agent's Worker finds the dead agent's job stalled, takes it, and sees the attempt
  // was another agent's: it ends it as lost, which queues the next attempt.
  const recovering = await c.waitForState(id, 'RECOVERING');
  t.regex(recovering.message, /^the agent of node ps was lost during attempt 1/);
  t.is(recovering.restarts, 1);
  t.deepEqual(agent.gangs(), []);
  await c.scheduler.start();
  const done = await c.waitForState(id, 'SUCCEEDED');
  t.is(done.attempt, 2);
  t.is(done.node, 'ps');
});

test('an agent killed mid-job on one node: the job is placed again on another node', async (t) => {
  const c = await cluster(t);
  const agentProcess = await c.startAgentProcess('pa', 2);
  const id = await c.submit('mover', 2, { runMs: 150, runMsByAttempt: { '1': 60_000 } });
  await c.waitForState(id, 'RUNNING');
  await waitFor('all ranks to start', () => c.rankPids(id, 1).length === 2);
  await c.startAgent('pb', 2);
  agentProcess.kill('SIGKILL');
  const done = await c.waitForState(id, 'SUCCEEDED');
  t.is(done.node, 'pb');
  t.is(done.attempt, 2);
  t.false((await c.queue.nodes()).find((n) => n.name === 'pa')!.alive);
  // The old ranks have no agent until one serves node pa again; it reaps them.
  const orphans = c.rankPids(id, 1);
  await c.startAgent('pa', 2);
  assertAllDead(t, orphans);
});

test('SIGTERM to an agent stops its gangs (no rank survives) and hands the job back', async (t) => {
  const c = await cluster(t);
  const agentProcess = await c.startAgentProcess('pt', 3);
  const id = await c.submit('drained', 3, { runMs: 60_000, spawnChild: true, ignoreSigterm: true });
  await c.waitForState(id, 'RUNNING');
  await waitFor('all ranks to start', () => c.rankPids(id, 1).length === 6);
  agentProcess.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => agentProcess.once('exit', (exitCode) => r(exitCode)));
  t.is(code, 0);
  assertAllDead(t, c.rankPids(id, 1));
  const job = await c.job(id);
  t.is(job.state, 'RECOVERING', 'waiting for a node again');
  t.is(job.restarts, 0, 'a drained node is not the job’s failure');
  t.regex(job.message, /the node agent received SIGTERM; restart \(not counted\)/);
  t.false((await c.queue.nodes()).find((n) => n.name === 'pt')!.alive, 'the lease was given up');
});
