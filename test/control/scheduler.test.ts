// The queue and the gang scheduler against a real Redis. Nodes are registered by the test itself
// (it holds their leases, as an agent would) and attempts are ended through the same store calls
// an agent makes, so placement can be checked step by step; agent.test.ts runs the same flow with
// real agents and processes.
import test, { type ExecutionContext } from 'ava';

import { finishAttempt } from '../../control/recovery.js';
import { watchJobEvents, type JobEvent } from '../../control/events.js';
import { JobQueue } from '../../control/job-queue.js';
import { toJobSummary, type JobRecord } from '../../control/job-record.js';
import { entryId, nodeQueue } from '../../control/pending.js';
import { Scheduler } from '../../control/scheduler.js';
import { ControlStore, freeDevices } from '../../control/store.js';
import {
  connect,
  cpuInventory,
  deletePrefix,
  spec,
  specYaml,
  testPrefix,
  waitFor,
} from '../helpers/control.js';
import { useRedis } from '../helpers/redis.js';
import { parseSpec } from '../../orchestrator/spec/validate.js';

const redisServer = useRedis(test);
const AGENT = 'test-agent';

interface Setup {
  queue: JobQueue;
  store: ControlStore;
  scheduler: Scheduler;
  prefix: string;
  submit(name: string, devices: number, priority?: number, maxRestarts?: number): Promise<string>;
  job(id: string): Promise<JobRecord>;
  /** Ends the job's current attempt as its agent would on success. */
  finish(id: string): Promise<void>;
  newScheduler(options?: { starvationMs?: number; clock?: () => number }): Scheduler;
}

async function setup(
  t: ExecutionContext,
  nodes: [string, number][],
  options: { starvationMs?: number; clock?: () => number; leaseMs?: number } = {},
): Promise<Setup> {
  const prefix = testPrefix(t.title);
  const redis = connect(redisServer().url);
  const queue = new JobQueue(redis, prefix);
  const store = queue.store;
  const schedulers: Scheduler[] = [];
  const connections = [redis];
  const newScheduler = (o: { starvationMs?: number; clock?: () => number } = {}) => {
    const connection = connect(redisServer().url);
    connections.push(connection);
    const s = new Scheduler({
      redis: connection,
      prefix,
      pollMs: 60_000,
      starvationMs: o.starvationMs ?? options.starvationMs ?? 60_000,
      clock: o.clock ?? options.clock,
      backoff: { baseMs: 1, maxMs: 1 },
    });
    schedulers.push(s);
    return s;
  };
  const scheduler = newScheduler();
  for (const [name, devices] of nodes) {
    await store.registerNode(
      cpuInventory(name, devices),
      AGENT,
      options.leaseMs ?? 60_000,
      60_000,
      Date.now(),
    );
  }
  t.teardown(async () => {
    for (const s of schedulers) await s.stop();
    await queue.close();
    await deletePrefix(redis, prefix);
    for (const c of connections) await c.quit();
  });
  const job = async (id: string) => {
    const record = await store.getJob(id);
    if (!record) throw new Error(`no job ${id}`);
    return record;
  };
  return {
    queue,
    store,
    scheduler,
    prefix,
    newScheduler,
    job,
    submit: async (name, devices, priority = 0, maxRestarts = 3) => {
      const result = await queue.submit(spec(name, devices, { priority, maxRestarts }));
      return result.id;
    },
    finish: async (id) => {
      const record = await job(id);
      const applied = await finishAttempt(store, queue.pending, record, { kind: 'succeeded' });
      if (applied !== 'SUCCEEDED') throw new Error(`could not finish ${id}: ${applied}`);
    },
  };
}

/** No device is held by two jobs, and the device tables say exactly what the active jobs hold. */
async function assertNoDoubleBooking(t: ExecutionContext, s: Setup): Promise<void> {
  const active = await s.queue.list({ states: ['PLACED', 'RUNNING'] });
  for (const job of active) {
    const held = job.shares.reduce((sum, share) => sum + share.devices.length, 0);
    t.is(held, job.devices, `${job.id} holds the devices it needs`);
  }
  for (const node of await s.store.nodes()) {
    const expected = new Map<number, string>();
    for (const job of active) {
      for (const share of job.shares.filter((sh) => sh.node === node.name)) {
        for (const d of share.devices) {
          t.false(expected.has(d), `device ${d} of ${node.name} held by ${expected.get(d)} and ${job.id}`);
          t.true(d < node.devices);
          expected.set(d, job.id);
        }
      }
    }
    t.deepEqual(
      [...node.heldBy.entries()].sort((a, b) => a[0] - b[0]),
      [...expected.entries()].sort((a, b) => a[0] - b[0]),
      `device table of ${node.name}`,
    );
  }
}

test('two 4-device jobs run side by side on an 8-device node while a third waits', async (t) => {
  const s = await setup(t, [['n8', 8]]);
  const a = await s.submit('a', 4);
  const b = await s.submit('b', 4);
  const c = await s.submit('c', 4);
  const report = await s.scheduler.runPass();
  t.deepEqual(report.placed.map((p) => p.jobId).sort(), [a, b].sort());
  const [ja, jb, jc] = [await s.job(a), await s.job(b), await s.job(c)];
  t.is(ja.state, 'PLACED');
  t.is(jb.state, 'PLACED');
  t.is(jc.state, 'QUEUED');
  t.deepEqual([...ja.deviceIndices, ...jb.deviceIndices].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  t.not(ja.token, jb.token);
  t.is(ja.attempt, 1);
  t.true(await s.queue.checkTelemetryToken(a, 1, ja.token!));
  t.false(await s.queue.checkTelemetryToken(a, 2, ja.token!), 'another attempt');
  t.false(await s.queue.checkTelemetryToken(a, 1, jb.token!), "another job's secret");
  t.false(await s.queue.checkTelemetryToken(c, 0, ''), 'a waiting job has none');
  await assertNoDoubleBooking(t, s);
  // The hand-off: each placed attempt is in its node's queue.
  const handed = nodeQueue(s.queue.redis, s.prefix, 'n8');
  t.truthy(await handed.getJob(entryId({ jobId: a, attempt: 1 })));
  await handed.close();

  t.deepEqual((await s.scheduler.runPass()).placed, [], 'nothing fits while both run');
  await s.finish(a);
  t.false(await s.queue.checkTelemetryToken(a, 1, ja.token!), 'revoked when the attempt ended');
  const next = await s.scheduler.runPass();
  t.deepEqual(
    next.placed.map((p) => [p.jobId, p.devices]),
    [[c, ja.deviceIndices]],
  );
  await assertNoDoubleBooking(t, s);
});

test('with two nodes a gang is never split: each job lands whole on one node, or waits', async (t) => {
  const s = await setup(t, [
    ['node-a', 4],
    ['node-b', 4],
  ]);
  const x = await s.submit('x', 2);
  t.deepEqual(
    (await s.scheduler.runPass()).placed.map((p) => [p.jobId, p.node, p.devices.length]),
    [[x, 'node-a', 2]],
  );
  // 2 devices are free on node-a, 4 on node-b: the 3-device job goes whole onto node-b.
  const y = await s.submit('y', 3);
  t.deepEqual(
    (await s.scheduler.runPass()).placed.map((p) => [p.jobId, p.node, p.devices.length]),
    [[y, 'node-b', 3]],
  );
  // Best fit: node-a's 2 free devices, not node-b's 1.
  const z = await s.submit('z', 2);
  t.deepEqual(
    (await s.scheduler.runPass()).placed.map((p) => [p.jobId, p.node, p.devices.length]),
    [[z, 'node-a', 2]],
  );
  // 3 devices free in all (2 on node-a, 1 on node-b), but no node has 3: the job waits whole.
  await s.finish(x);
  const w = await s.submit('w', 3);
  t.deepEqual((await s.scheduler.runPass()).placed, []);
  t.is((await s.job(w)).state, 'QUEUED');
  t.deepEqual((await s.store.nodes()).map((n) => [n.name, freeDevices(n)]).sort(), [
    ['node-a', 2],
    ['node-b', 1],
  ]);
  for (const id of [y, z]) {
    const job = await s.job(id);
    t.is(job.deviceIndices.length, job.devices, `${id} holds all its devices on ${job.node}`);
  }
  await assertNoDoubleBooking(t, s);
  // Once node-b's job ends, node-b holds it whole.
  await s.finish(y);
  t.deepEqual(
    (await s.scheduler.runPass()).placed.map((p) => [p.jobId, p.node, p.devices.length]),
    [[w, 'node-b', 3]],
  );
});

test('a gang bigger than every node spans the fewest nodes, ranks in contiguous ranges, all or nothing', async (t) => {
  const s = await setup(t, [
    ['node-a', 2],
    ['node-b', 2],
    ['node-c', 1],
  ]);
  // 1 device busy on node-a: 4 free in all, but node-c would be a third node and node-a has only 1.
  const small = await s.submit('small', 1);
  t.deepEqual(
    (await s.scheduler.runPass()).placed.map((p) => [p.jobId, p.node]),
    [[small, 'node-c']],
    'a 1-device job takes the best fit, node-c',
  );
  const blocker = await s.submit('blocker', 1);
  await s.scheduler.runPass();
  t.is((await s.job(blocker)).node, 'node-a');
  const wide = await s.submit('wide', 4);
  t.deepEqual((await s.scheduler.runPass()).placed, [], 'only 3 devices free: the gang waits whole');
  t.is((await s.job(wide)).state, 'QUEUED');
  t.deepEqual(
    (await s.store.nodes()).map((n) => [n.name, freeDevices(n)]),
    [
      ['node-a', 1],
      ['node-b', 2],
      ['node-c', 0],
    ],
    'nothing reserved for a gang that did not fit',
  );

  await s.finish(blocker);
  const pass = await s.scheduler.runPass();
  t.deepEqual(pass.placed, [
    {
      jobId: wide,
      node: 'node-a',
      attempt: 1,
      devices: [0, 1],
      shares: [
        { node: 'node-a', devices: [0, 1], firstRank: 0 },
        { node: 'node-b', devices: [0, 1], firstRank: 2 },
      ],
    },
  ]);
  const placed = await s.job(wide);
  t.like(placed, { state: 'PLACED', node: 'node-a', deviceIndices: [0, 1] });
  t.is(toJobSummary(placed).node, 'node-a+node-b', 'a split gang names its nodes');
  t.like(
    (await s.queue.history(wide)).at(-1),
    { state: 'PLACED', node: 'node-a+node-b' },
    'so do its events',
  );
  t.deepEqual(
    placed.shares.map((sh) => [sh.node, sh.firstRank, sh.devices]),
    [
      ['node-a', 0, [0, 1]],
      ['node-b', 2, [0, 1]],
    ],
  );
  t.regex(
    (await s.queue.history(wide)).at(-1)!.message,
    /placed on node-a devices 0,1 and node-b devices 0,1/,
  );
  await assertNoDoubleBooking(t, s);
  // Each node's agent gets the attempt in its own queue.
  for (const name of ['node-a', 'node-b']) {
    const handed = nodeQueue(s.queue.redis, s.prefix, name);
    t.truthy(await handed.getJob(entryId({ jobId: wide, attempt: 1 })), `handed to ${name}`);
    await handed.close();
  }

  // Each agent claims and starts its share; the job runs once both have.
  t.is(await s.store.claimJob(wide, 'node-b', 1, AGENT, Date.now()), 'ok');
  t.is(await s.store.claimJob(wide, 'node-c', 1, AGENT, Date.now()), 'stale', 'no share on node-c');
  t.true(await s.store.markRunning(wide, 'node-b', 1, AGENT, [21, 22], Date.now()));
  t.false(await s.store.markRunning(wide, 'node-b', 1, AGENT, [21, 22], Date.now()), 'once per share');
  t.is((await s.job(wide)).state, 'PLACED', 'node-a has not started its share');
  t.is(await s.store.claimJob(wide, 'node-a', 1, AGENT, Date.now()), 'ok');
  t.true(await s.store.markRunning(wide, 'node-a', 1, AGENT, [11, 12], Date.now()));
  const running = await s.job(wide);
  t.like(running, { state: 'RUNNING', agent: AGENT, pids: [11, 12, 21, 22] });
  t.deepEqual(
    running.shares.map((sh) => [sh.node, sh.agent, sh.pids]),
    [
      ['node-a', AGENT, [11, 12]],
      ['node-b', AGENT, [21, 22]],
    ],
  );

  // A rank on node-b fails: the attempt ends on both nodes, node-a's agent is told, and the gang
  // is placed again whole.
  const messages: string[] = [];
  const listener = s.queue.redis.duplicate();
  listener.on('message', (_c: string, m: string) => messages.push(m));
  await listener.subscribe(s.store.keys.nodeControl('node-a'));
  t.teardown(() => listener.quit());
  const applied = await finishAttempt(
    s.store,
    s.queue.pending,
    running,
    { kind: 'failed', cause: 'rank-failed', message: 'rank 3 was killed by SIGKILL' },
    { node: 'node-b', backoff: { baseMs: 1, maxMs: 1 } },
  );
  t.is(applied, 'RECOVERING');
  await waitFor('node-a to be told', () => messages.length > 0);
  t.like(JSON.parse(messages[0]!), { type: 'ended', jobId: wide, attempt: 1 });
  const recovering = await s.job(wide);
  t.like(recovering, { state: 'RECOVERING', restarts: 1, pids: [], agent: undefined });
  t.deepEqual(
    recovering.shares.map((sh) => [sh.agent, sh.pids]),
    [
      [undefined, []],
      [undefined, []],
    ],
  );
  t.deepEqual(
    (await s.store.nodes()).map((n) => [n.name, freeDevices(n)]),
    [
      ['node-a', 2],
      ['node-b', 2],
      ['node-c', 0],
    ],
    'freed on every node of the gang',
  );
  // The same report from node-a's agent afterwards changes nothing.
  t.is(
    await finishAttempt(s.store, s.queue.pending, running, {
      kind: 'failed',
      cause: 'rank-failed',
      message: 'rank 0 lost its peer',
    }),
    undefined,
  );
  await new Promise((r) => setTimeout(r, 5)); // its backoff
  const again = await s.scheduler.runPass();
  t.deepEqual(
    again.placed.map((p) => [p.jobId, p.attempt, p.shares.map((sh) => sh.node)]),
    [[wide, 2, ['node-a', 'node-b']]],
  );

  // node-b's agent is lost (its lease is gone): the sweep ends the attempt for the whole gang.
  t.is(await s.store.claimJob(wide, 'node-b', 2, AGENT, Date.now()), 'ok');
  await s.store.releaseLease('node-b', AGENT);
  const swept = await s.scheduler.runPass();
  t.deepEqual(swept.lost, [wide]);
  t.regex((await s.job(wide)).message, /the agent of node node-b was lost during attempt 2/);
  t.is(freeDevices((await s.store.nodes()).find((n) => n.name === 'node-a')!), 2);
  await assertNoDoubleBooking(t, s);
});

test('a split gang succeeds when the last of its nodes has finished', async (t) => {
  const s = await setup(t, [
    ['node-a', 2],
    ['node-b', 1],
  ]);
  const wide = await s.submit('wide', 3);
  await s.scheduler.runPass();
  t.is(await s.store.shareSucceeded(wide, 'node-a', 1), 'stale', 'not running yet');
  for (const [node, pids] of [
    ['node-a', [1, 2]],
    ['node-b', [3]],
  ] as const) {
    t.is(await s.store.claimJob(wide, node, 1, AGENT, Date.now()), 'ok');
    t.true(await s.store.markRunning(wide, node, 1, AGENT, [...pids], Date.now()));
  }
  t.is(await s.store.shareSucceeded(wide, 'node-b', 1), 'others-running');
  t.is((await s.job(wide)).state, 'RUNNING', "node-a's ranks are still finishing");
  t.is(freeDevices((await s.store.nodes()).find((n) => n.name === 'node-a')!), 0);
  t.is(await s.store.shareSucceeded(wide, 'node-a', 1), 'all');
  t.is(
    await finishAttempt(
      s.store,
      s.queue.pending,
      await s.job(wide),
      { kind: 'succeeded' },
      { node: 'node-a' },
    ),
    'SUCCEEDED',
  );
  t.deepEqual(
    (await s.store.nodes()).map((n) => [n.name, freeDevices(n)]),
    [
      ['node-a', 2],
      ['node-b', 1],
    ],
  );
  t.is(await s.store.shareSucceeded(wide, 'node-b', 1), 'stale');
  const hash = await s.queue.redis.hgetall(s.store.keys.job(wide));
  t.deepEqual(
    Object.keys(hash).filter((k) => k.includes('@')),
    [],
    'no per-node field outlives the attempt',
  );
});

test('a gang that one node can hold is never split: it waits for that node', async (t) => {
  const s = await setup(t, [
    ['node-a', 2],
    ['node-b', 2],
    ['node-c', 4],
  ]);
  const busy = await s.submit('busy', 4);
  t.deepEqual(
    (await s.scheduler.runPass()).placed.map((p) => [p.jobId, p.node, p.shares.length]),
    [[busy, 'node-c', 1]],
  );
  // node-a and node-b have 4 free devices together, but node-c can hold the gang: it waits.
  const next = await s.submit('next', 4);
  t.deepEqual((await s.scheduler.runPass()).placed, []);
  t.is((await s.job(next)).state, 'QUEUED');
  await s.finish(busy);
  t.deepEqual(
    (await s.scheduler.runPass()).placed.map((p) => [p.jobId, p.node, p.shares.length]),
    [[next, 'node-c', 1]],
  );
  // A gang bigger than every node waits until the nodes together have its devices free.
  const wide = await s.submit('wide', 8);
  t.deepEqual((await s.scheduler.runPass()).placed, [], 'only 4 free in all');
  t.is((await s.job(wide)).state, 'QUEUED');
  await s.finish(next);
  t.deepEqual(
    (await s.scheduler.runPass()).placed.map((p) => [
      p.jobId,
      p.shares.map((sh) => [sh.node, sh.firstRank, sh.devices.length]),
    ]),
    [
      [
        wide,
        [
          ['node-c', 0, 4],
          ['node-a', 4, 2],
          ['node-b', 6, 2],
        ],
      ],
    ],
    'the biggest free share first',
  );
  await assertNoDoubleBooking(t, s);
});

test('higher priority runs first, FIFO within a priority', async (t) => {
  const s = await setup(t, [['n2', 2]]);
  const blocker = await s.submit('blocker', 2);
  await s.scheduler.runPass();
  const A = await s.submit('A', 2, 0);
  const B = await s.submit('B', 2, 5);
  const C = await s.submit('C', 2, 5);
  const D = await s.submit('D', 2, 10);
  const E = await s.submit('E', 2, 0);
  t.deepEqual(
    (await s.queue.pending.list()).map((e) => e.jobId),
    [D, B, C, A, E],
  );
  const order: string[] = [];
  let running = blocker;
  for (let i = 0; i < 5; i++) {
    await s.finish(running);
    const placed = (await s.scheduler.runPass()).placed;
    t.is(placed.length, 1);
    running = placed[0]!.jobId;
    order.push(running);
  }
  t.deepEqual(order, [D, B, C, A, E]);
});

test('backfill lets small jobs pass a big one until it has waited too long; then its node is kept for it', async (t) => {
  let now = Date.now();
  const s = await setup(t, [['n8', 8]], { starvationMs: 1000, clock: () => now });
  const small1 = await s.submit('small1', 4);
  const small2 = await s.submit('small2', 4);
  await s.scheduler.runPass();
  const big = await s.submit('big', 8);
  const small3 = await s.submit('small3', 4);
  const small4 = await s.submit('small4', 4);
  now = Date.now(); // the test's clock: it moves only when the test says

  // Backfill: the big job does not fit in 4 free devices, the small one behind it does.
  await s.finish(small1);
  let pass = await s.scheduler.runPass();
  t.deepEqual(
    pass.placed.map((p) => p.jobId),
    [small3],
  );
  t.deepEqual(pass.held, []);

  // The big job has now waited past the threshold: the node is kept for it, so the 4 devices
  // freed next are not given to small4.
  now += 2000;
  await s.finish(small2);
  pass = await s.scheduler.runPass();
  t.deepEqual(pass.placed, []);
  t.deepEqual(pass.held, [{ jobId: big, node: 'n8' }]);
  t.is((await s.job(big)).holdNode, 'n8');
  t.is((await s.job(small4)).state, 'QUEUED');
  t.is(freeDevices((await s.store.nodes())[0]!), 4);
  t.regex((await s.queue.history(big)).at(-1)!.message, /waited too long: keeping node n8/);

  // The last small job ends: the big one fits and is placed; the hold ends with the placement.
  await s.finish(small3);
  pass = await s.scheduler.runPass();
  t.deepEqual(
    pass.placed.map((p) => p.jobId),
    [big],
  );
  t.is((await s.job(big)).holdNode, undefined);
  t.is((await s.job(small4)).state, 'QUEUED');
  // small4 has waited past the threshold too: the node is now kept for it, the next in line.
  t.deepEqual(pass.held, [{ jobId: small4, node: 'n8' }]);
  t.is((await s.store.nodes())[0]!.hold, small4);

  await s.finish(big);
  pass = await s.scheduler.runPass();
  t.deepEqual(
    pass.placed.map((p) => p.jobId),
    [small4],
  );
  t.is((await s.store.nodes())[0]!.hold, undefined);
});

test('a cancelled queued job is never placed and leaves the pending queue', async (t) => {
  const s = await setup(t, [['n4', 4]]);
  const blocker = await s.submit('blocker', 4);
  await s.scheduler.runPass();
  const x = await s.submit('x', 4);
  const result = await s.queue.cancel(x);
  t.deepEqual(result, { cancelled: true, previousState: 'QUEUED', message: 'cancelled while QUEUED' });
  t.deepEqual(
    (await s.queue.pending.list()).map((e) => e.jobId),
    [],
  );
  await s.finish(blocker);
  t.deepEqual((await s.scheduler.runPass()).placed, []);
  const job = await s.job(x);
  t.is(job.state, 'CANCELLED');
  t.is(job.attempt, 0);
  t.is(freeDevices((await s.store.nodes())[0]!), 4);
  t.deepEqual(await s.queue.cancel(x), {
    cancelled: false,
    previousState: 'CANCELLED',
    message: `job ${x} already CANCELLED`,
  });
  t.deepEqual(await s.queue.cancel('nope'), { cancelled: false, message: "no job 'nope'" });
});

test('cancelling a placed job tells its node agent and frees its devices when the attempt ends', async (t) => {
  const s = await setup(t, [['n4', 4]]);
  const x = await s.submit('x', 3);
  await s.scheduler.runPass();
  const messages: string[] = [];
  const listener = s.queue.redis.duplicate();
  listener.on('message', (_c: string, m: string) => messages.push(m));
  await listener.subscribe(s.store.keys.nodeControl('n4'));
  t.teardown(() => listener.quit());

  const result = await s.queue.cancel(x);
  t.true(result.cancelled);
  t.is(result.previousState, 'PLACED');
  await waitFor('the cancel command', () => messages.length > 0);
  t.deepEqual(JSON.parse(messages[0]!), { type: 'cancel', jobId: x, attempt: 1 });
  const placed = await s.job(x);
  t.true(placed.cancelRequested);
  t.is(placed.state, 'PLACED', 'devices stay held until the ranks are gone');
  t.is(freeDevices((await s.store.nodes())[0]!), 1);

  // The agent stops the gang; whatever the ranks did, the attempt ends as CANCELLED.
  const applied = await finishAttempt(s.store, s.queue.pending, placed, {
    kind: 'failed',
    cause: 'rank-failed',
    message: 'rank 0 was killed by SIGTERM',
  });
  t.is(applied, 'CANCELLED');
  const ended = await s.job(x);
  t.is(ended.state, 'CANCELLED');
  t.is(ended.token, undefined, 'the telemetry token is revoked');
  t.is(freeDevices((await s.store.nodes())[0]!), 4);
  t.deepEqual((await s.scheduler.runPass()).placed, []);
});

test('a job naming GPUs is placed only on a node that has them', async (t) => {
  const s = await setup(t, [['cpu8', 8]]);
  const yaml = specYaml('gpus', 2).replace('devices: 2', 'resources: { accelerators: "H100:2" }');
  const parsed = parseSpec(yaml);
  if (!parsed.ok) return t.fail(JSON.stringify(parsed.errors));
  const job = await s.queue.submit({ spec: parsed.spec, specYaml: yaml });
  const other = await s.submit('plain', 2);
  const first = await s.scheduler.runPass();
  t.deepEqual(
    first.placed.map((p) => [p.jobId, p.node]),
    [[other, 'cpu8']],
    'the CPU node takes the plain job and never the GPU job',
  );
  await s.store.registerNode(
    {
      node: 'h100x4',
      hostname: 'gpu-host',
      kind: 'cuda',
      devices: Array.from({ length: 4 }, (_, index) => ({
        index,
        name: 'NVIDIA H100 80GB HBM3',
        memoryBytes: 80 * 2 ** 30,
      })),
      threadsPerDevice: 1,
    },
    'agent-gpu',
    60_000,
    60_000,
    Date.now(),
  );
  const second = await s.scheduler.runPass();
  t.deepEqual(
    second.placed.map((p) => [p.jobId, p.node]),
    [[job.id, 'h100x4']],
  );
});

test('concurrent placements never double-book a device', async (t) => {
  const s = await setup(t, [['n8', 8]]);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push(await s.submit(`j${i}`, 4));
  // Two connections fire every placement at once, as two racing schedulers would.
  const other = new ControlStore(connect(redisServer().url), s.prefix);
  t.teardown(() => other.redis.quit());
  const now = Date.now();
  const results = await Promise.all(
    ids.map((id, i) => (i % 2 === 0 ? s.store : other).placeJob(id, 'n8', 0, `token-${i}`, now)),
  );
  const won = results.filter((r) => r.ok);
  t.is(won.length, 2);
  const devices = won.flatMap((r) => (r.ok ? r.shares.flatMap((s) => s.devices) : []));
  t.deepEqual([...devices].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  for (const r of results) if (!r.ok) t.regex(r.reason, /only 0 of 4 devices free|only \d of 4/);
  await assertNoDoubleBooking(t, s);
});

test('two schedulers racing on the same Redis place every job exactly once without double-booking', async (t) => {
  const s = await setup(t, [
    ['na', 8],
    ['nb', 6],
  ]);
  const second = s.newScheduler();
  const ids: string[] = [];
  for (let i = 0; i < 24; i++) ids.push(await s.submit(`r${i}`, (i % 4) + 1, i % 3));
  for (let round = 0; round < 200; round++) {
    await Promise.all([s.scheduler.runPass(), second.runPass()]);
    await assertNoDoubleBooking(t, s);
    const active = await s.queue.list({ states: ['PLACED'] });
    if (active.length === 0 && (await s.queue.list({ states: ['QUEUED'] })).length === 0) break;
    // End two running jobs, as their agents would.
    for (const job of active.slice(0, 2)) await s.finish(job.id);
  }
  const jobs = await s.queue.list();
  t.is(jobs.length, 24);
  for (const job of jobs) {
    t.is(job.state, 'SUCCEEDED', job.id);
    t.is(job.attempt, 1, `${job.id} was placed once`);
    const placements = (await s.queue.history(job.id)).filter((e) => e.state === 'PLACED');
    t.is(placements.length, 1, `${job.id} has one placement event`);
  }
});

test('a restarted orchestrator (a new scheduler on the same Redis) loses no job', async (t) => {
  const s = await setup(t, [['n4', 4]]);
  const first = await s.submit('first', 4);
  await s.scheduler.runPass();
  const second = await s.submit('second', 2, 7);
  const third = await s.submit('third', 2, 1);
  await s.scheduler.runPass();
  t.is((await s.job(second)).state, 'QUEUED');
  await s.scheduler.stop(); // the orchestrator goes away

  // While it is down: a submitter dies between recording a job and enqueueing it, and another
  // scheduler dies between placing a job and handing it to the node.
  const orphanSpec = spec('orphan', 1);
  const seq = await s.store.nextSequence();
  const { newJobFields } = await import('../../control/job-record.js');
  await s.store.createJob(
    'orphan-1',
    newJobFields({ id: 'orphan-1', seq, ...orphanSpec, now: Date.now() }),
    Date.now(),
  );
  await s.finish(first);
  const half = await s.store.placeJob(second, 'n4', 0, 'token', Date.now());
  t.true(half.ok);

  const restarted = s.newScheduler();
  const pass = await restarted.runPass();
  const jobs = await s.queue.list();
  t.deepEqual(jobs.map((j) => j.id).sort(), [first, second, third, 'orphan-1'].sort());
  t.is((await s.job(first)).state, 'SUCCEEDED');
  t.is((await s.job(second)).state, 'PLACED');
  // The half-done placement was handed to the node and its pending entry retired.
  const handed = nodeQueue(s.queue.redis, s.prefix, 'n4');
  t.truthy(await handed.getJob(entryId({ jobId: second, attempt: 1 })));
  await handed.close();
  t.deepEqual(
    pass.placed.map((p) => p.jobId),
    [third],
  );
  // The never-enqueued job was enqueued, and is placed once devices free up.
  t.deepEqual(
    (await s.queue.pending.list()).map((e) => e.jobId),
    ['orphan-1'],
  );
  await s.finish(third);
  t.deepEqual(
    (await restarted.runPass()).placed.map((p) => p.jobId),
    ['orphan-1'],
  );
});

test('jobs of a node whose agent is lost go to recovery and are placed on a live node', async (t) => {
  const s = await setup(t, [['big', 8]]);
  await s.store.registerNode(cpuInventory('small', 4), 'doomed-agent', 60_000, 60_000, Date.now());
  const x = await s.submit('x', 4, 0, 2);
  const y = await s.submit('y', 8);
  let pass = await s.scheduler.runPass();
  t.deepEqual(
    pass.placed.map((p) => [p.jobId, p.node]),
    [
      [x, 'small'],
      [y, 'big'],
    ],
    'best fit: the 4-device job goes to the 4-device node',
  );
  await s.store.claimJob(x, 'small', 1, 'doomed-agent', Date.now());
  await s.store.claimJob(y, 'big', 1, AGENT, Date.now());
  // The small node's agent stops renewing its lease, which lapses (at once here: a short lease
  // could lapse before the first pass on a loaded machine).
  await s.queue.redis.pexpire(s.store.keys.nodeAlive('small'), 1);
  await waitFor(
    'the lease of node small to lapse',
    async () => !(await s.store.nodes()).find((n) => n.name === 'small')?.alive,
  );
  await s.finish(y);
  pass = await s.scheduler.runPass();
  t.deepEqual(pass.lost, [x]);
  const job = await s.job(x);
  t.true(job.state === 'RECOVERING' || job.state === 'PLACED');
  t.is(job.restarts, 1);
  const recovering = (await s.queue.history(x)).find((e) => e.state === 'RECOVERING');
  t.regex(recovering!.message, /the agent of node small was lost during attempt 1; restart 1 of 2/);
  await waitFor('x placed again', async () => {
    await s.scheduler.runPass();
    return (await s.job(x)).state === 'PLACED';
  });
  const again = await s.job(x);
  t.is(again.node, 'big');
  t.is(again.attempt, 2);
  t.is(
    (await s.store.nodes()).find((n) => n.name === 'small')!.heldBy.size,
    0,
    'the dead node’s devices were released',
  );
});

test('watchers see every state change live, and late watchers read the history', async (t) => {
  const s = await setup(t, [['n2', 2]]);
  const seen: JobEvent[] = [];
  const subscription = await watchJobEvents(s.queue.redis, s.store.keys, (e) => seen.push(e));
  t.teardown(() => subscription.close());
  const x = await s.submit('x', 2);
  await s.scheduler.runPass();
  t.is(await s.store.claimJob(x, 'n2', 1, AGENT, Date.now()), 'ok');
  t.true(await s.store.markRunning(x, 'n2', 1, AGENT, [11, 12], Date.now()));
  await s.finish(x);
  await waitFor('four events', () => seen.length >= 4);
  const states = seen.filter((e) => e.jobId === x).map((e) => e.state);
  t.deepEqual(states, ['QUEUED', 'PLACED', 'RUNNING', 'SUCCEEDED']);
  const placed = seen.find((e) => e.state === 'PLACED')!;
  t.deepEqual(placed.devices, [0, 1]);
  t.is(placed.node, 'n2');
  t.is(placed.attempt, 1);
  t.deepEqual(
    (await s.queue.history(x)).map((e) => e.state),
    states,
  );
});
