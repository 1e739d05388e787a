// Telemetry that survives: a worker's client reconnects with backoff when the orchestrator goes
// away and comes back on the same address (its gang kept running on its agent), replaying what
// waited in its bounded outbox; the server bounds what it holds per job and says when it drops;
// an attempt's rendezvous keys get a time to live once it is over.
import { Server, ServerCredentials } from '@grpc/grpc-js';
import test from 'ava';
import { Redis } from 'ioredis';

import { freePort } from '../../cluster/embedded-redis.js';
import { expireRendezvousKeys } from '../../cluster/rendezvous-keys.js';
import type { JobRecord } from '../../control/job-record.js';
import { Keys } from '../../control/keys.js';
import { MODEL_PRESETS } from '../../core/model-config.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import { TelemetryService } from '../../orchestrator/telemetry/telemetry-service.js';
import { telemetryService } from '../../proto/services.js';
import { TelemetryClient, type TelemetryIdentity } from '../../worker-native/host/telemetry-client.js';
import { useRedis } from '../helpers/redis.js';

const redis = useRedis(test);

function job(id: string, devices: number): JobRecord {
  const spec = {
    name: id,
    model: { preset: 'tiny', config: MODEL_PRESETS.tiny! },
    data: { path: '/dev/null' },
    seq_len: 64,
    devices,
    grad_accumulation: 1,
  } as JobRecord['spec'];
  return {
    id,
    name: id,
    specYaml: '',
    spec,
    priority: 0,
    devices,
    maxRestarts: 1,
    state: 'RUNNING',
    attempt: 1,
    restarts: 0,
    node: 'n1',
    deviceIndices: [],
    shares: [],
    token: 'secret',
    pids: [],
    cancelRequested: false,
    seq: 1,
    submittedAt: 0,
    queuedAt: 0,
    updatedAt: 0,
    message: '',
  };
}

const who = (jobId: string, rank = 0): TelemetryIdentity => ({
  jobId,
  attempt: 1,
  rank,
  worldSize: 1,
  token: 'secret',
  node: 'n1',
});

function step(n: number) {
  return {
    step: n,
    loss: 2,
    tokens: 64,
    lr: 1e-3,
    gradNorm: 0.5,
    stepSeconds: 0.1,
    compute: 0.1,
    commWait: 0,
    data: 0,
    optimizer: 0,
    checkpoint: 0,
    deviceBytesCurrent: 0,
    deviceBytesPeak: 0,
    hostBytes: 0,
    bytesSent: 0,
  };
}

async function until<T>(what: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await what();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Telemetry server (an orchestrator's, as far as the worker can tell) on a given port. */
async function serve(port: number, service: TelemetryService): Promise<Server> {
  const server = new Server();
  server.addService(telemetryService, service.implementation());
  await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return server;
}

test('the client reconnects with backoff after a server restart and replays what waited', async (t) => {
  const connection = new Redis(redis().url);
  t.teardown(() => connection.disconnect());
  const history = new TelemetryHistory(connection, new Keys('reconnect'));
  const jobs = [job('job-r', 1)];
  const newService = () =>
    new TelemetryService({
      getJob: (id) => Promise.resolve(jobs.find((j) => j.id === id)),
      history,
      peakFlopsPerDevice: () => Promise.resolve(1e9),
    });
  const port = await freePort();
  let server = await serve(port, newService());
  const acks: string[] = [];
  const status: string[] = [];
  const client = new TelemetryClient(`127.0.0.1:${port}`, who('job-r'), (kind) => acks.push(kind), {
    heartbeatMs: 50,
    reconnect: { baseMs: 50, maxMs: 400 },
    outboxLimit: 3,
    onStatus: (line) => status.push(line),
  });
  t.teardown(() => client.close());
  await until(() => (acks.length === 1 ? true : undefined));
  client.reportStep(step(1));
  await until(async () => ((await history.steps('job-r')).length === 1 ? true : undefined));

  server.forceShutdown();
  await until(() => (status.some((s) => s.includes('telemetry stream broke')) ? true : undefined));
  // While the server is away: five steps into an outbox of three (the two oldest are dropped).
  for (let n = 2; n <= 6; n++) client.reportStep(step(n));
  t.is(client.dropped, 2);

  server = await serve(port, newService());
  t.teardown(() => server.forceShutdown());
  await until(() => (acks.length === 2 ? true : undefined));
  t.true(client.reconnects >= 1);
  t.is(client.error, undefined);
  const steps = await until(async () => {
    const s = await history.steps('job-r');
    return s.length === 4 ? s : undefined;
  });
  t.deepEqual(
    steps.map((s) => s.step),
    [1, 4, 5, 6],
    'what waited arrives in order after registering again',
  );
  t.true(
    status.some((s) => s.includes('2 reports dropped so far while disconnected')),
    status.join('\n'),
  );
  client.reportStep(step(7));
  await until(async () => ((await history.steps('job-r')).length === 5 ? true : undefined));
});

test('the server bounds what waits per job and says when it drops reports', async (t) => {
  const connection = new Redis(redis().url);
  t.teardown(() => connection.disconnect());
  const history = new TelemetryHistory(connection, new Keys('bounded'));
  // A Redis slow to store: every report waits 30 ms for its turn.
  const slow = Object.create(history) as TelemetryHistory;
  slow.heard = async (...args) => {
    await new Promise((r) => setTimeout(r, 30));
    return history.heard(...args);
  };
  const logs: string[] = [];
  const service = new TelemetryService({
    getJob: (id) => Promise.resolve(id === 'job-b' ? job('job-b', 1) : undefined),
    history: slow,
    peakFlopsPerDevice: () => Promise.resolve(1e9),
    maxPendingPerJob: 5,
    log: (line) => logs.push(line),
  });
  const port = await freePort();
  const server = await serve(port, service);
  t.teardown(() => server.forceShutdown());
  let acked = false;
  const client = new TelemetryClient(`127.0.0.1:${port}`, who('job-b'), () => (acked = true), 60_000);
  t.teardown(() => client.close());
  await until(() => (acked ? true : undefined));
  for (let n = 1; n <= 40; n++) client.reportStep(step(n));
  await until(() => (logs.some((l) => l.includes('reports dropped (backlog cleared)')) ? true : undefined));
  t.true(service.reportsDropped > 0, `${service.reportsDropped} dropped`);
  t.is(
    service.reportsIngested + service.reportsDropped,
    40,
    'every report either stored or counted as dropped',
  );
  t.true(service.reportsIngested >= 5);
  t.deepEqual([...service.reportsDroppedByJob], [['job-b', service.reportsDropped]], 'the drops, per job');
  t.true(logs.some((l) => l.includes('job job-b has 5 reports waiting to be stored; dropping')));
  t.true(
    logs.some((l) => l.includes(`job job-b: ${service.reportsDropped} reports dropped (backlog cleared)`)),
  );
});

test("an attempt's rendezvous keys get a time to live; other keys are untouched", async (t) => {
  const connection = new Redis(redis().url);
  t.teardown(() => connection.disconnect());
  await connection.set('longctx/job-x/2/rank_0', 'a');
  await connection.set('longctx/job-x/2/rank_1', 'b');
  await connection.set('longctx/job-x/3/rank_0', 'next attempt');
  await connection.set('longctx/job-x/22/rank_0', 'another attempt with a common prefix');
  t.is(await expireRendezvousKeys(connection, 'longctx/job-x/2', 60_000), 2);
  for (const key of ['longctx/job-x/2/rank_0', 'longctx/job-x/2/rank_1']) {
    const ttl = await connection.pttl(key);
    t.true(ttl > 0 && ttl <= 60_000, `${key}: ${ttl}`);
  }
  t.is(await connection.pttl('longctx/job-x/3/rank_0'), -1);
  t.is(await connection.pttl('longctx/job-x/22/rank_0'), -1);
});
