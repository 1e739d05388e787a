// The Telemetry service over real gRPC on loopback with its history in a real Redis, fed by the
// worker's own client: registration is checked before anything is read, per-rank step reports
// become one record per step, stragglers are flagged, workers' events are kept.
import { Server, ServerCredentials } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { Redis } from 'ioredis';

import { MODEL_PRESETS } from '../../core/model-config.js';
import type { JobRecord } from '../../control/job-record.js';
import { Keys } from '../../control/keys.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import { StepAggregator } from '../../orchestrator/telemetry/step-aggregator.js';
import { TelemetryService } from '../../orchestrator/telemetry/telemetry-service.js';
import { telemetryService } from '../../proto/services.js';
import { TelemetryClient, type TelemetryIdentity } from '../../worker-native/host/telemetry-client.js';
import { useRedis } from '../helpers/redis.js';

const redis = useRedis(test);

function job(id: string, attempt: number, token: string, devices: number): JobRecord {
  const spec = {
    name: id,
    model: { preset: 'tiny', config: MODEL_PRESETS.tiny! },
    data: { path: '/dev/null' },
    seq_len: 64,
    devices,
    precision: 'fp32',
    optimizer: { lr: 1e-3, betas: [0.9, 0.95], eps: 1e-8, weight_decay: 0, grad_clip: 1 },
    schedule: { kind: 'constant', warmup_steps: 0, min_lr: 0 },
    steps: 10,
    grad_accumulation: 1,
    checkpoint: { every: 5, keep: 2, keep_every: 0 },
    activation_checkpointing: 'none',
    offload: 'none',
    max_restarts: 1,
    priority: 0,
    seed: 1,
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
    attempt,
    restarts: 0,
    node: 'n1',
    deviceIndices: [],
    shares: [],
    token,
    pids: [],
    cancelRequested: false,
    seq: 1,
    submittedAt: 0,
    queuedAt: 0,
    updatedAt: 0,
    message: '',
  };
}

interface Fixture {
  address: string;
  history: TelemetryHistory;
  service: TelemetryService;
}

async function start(t: ExecutionContext, jobs: JobRecord[]): Promise<Fixture> {
  const connection = new Redis(redis().url);
  const keys = new Keys(`t${Math.random().toString(36).slice(2, 8)}`);
  const history = new TelemetryHistory(connection, keys);
  const service = new TelemetryService({
    getJob: (id) => Promise.resolve(jobs.find((j) => j.id === id)),
    history,
    peakFlopsPerDevice: () => Promise.resolve(100e9),
  });
  const server = new Server();
  server.addService(telemetryService, service.implementation());
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  t.teardown(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    connection.disconnect();
  });
  return { address: `127.0.0.1:${port}`, history, service };
}

function identity(jobId: string, rank: number, token: string, attempt = 1, worldSize = 2): TelemetryIdentity {
  return { jobId, attempt, rank, worldSize, token, node: 'n1' };
}

async function until<T>(what: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await what();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function step(step: number, compute: number) {
  return {
    step,
    loss: 2.5 - step * 0.1,
    tokens: 64,
    lr: 1e-3,
    gradNorm: 0.5,
    stepSeconds: compute + 0.1,
    compute,
    commWait: 0.05,
    data: 0.01,
    optimizer: 0.02,
    checkpoint: 0,
    deviceBytesCurrent: 1000,
    deviceBytesPeak: 2000,
    hostBytes: 0,
    bytesSent: 4096,
  };
}

test('ranks with the right token are acked; their steps become one record per step', async (t) => {
  const f = await start(t, [job('job-a', 1, 'secret-a', 2)]);
  const acks: string[] = [];
  const clients = [0, 1].map(
    (rank) =>
      new TelemetryClient(f.address, identity('job-a', rank, 'secret-a'), (kind) => acks.push(kind), 50),
  );
  t.teardown(() => Promise.all(clients.map((c) => c.close())).then(() => undefined));
  await until(() => Promise.resolve(acks.length === 2 ? true : undefined));
  clients[0]!.reportStep(step(1, 1.0));
  clients[1]!.reportStep(step(1, 1.2));
  clients[0]!.reportEvent('checkpoint-saved', 'checkpoint 1', {
    checkpoint: { step: 1, path: '/runs/job-a/checkpoints/step-00000001', bytes: 1234, saveSeconds: 0.5 },
  });
  const [summary] = await until(async () => {
    const s = await f.history.steps('job-a');
    return s.length > 0 ? s : undefined;
  });
  t.is(summary!.step, 1);
  t.is(summary!.tokens, 64);
  t.is(summary!.stepSeconds, 1.3, 'the gang moves at the slowest rank');
  t.is(summary!.ranks.length, 2);
  t.true(Math.abs(summary!.ranks[1]!.other - (1.3 - 1.2 - 0.05)) < 1e-9);
  const progress = await f.history.progress('job-a');
  t.is(progress?.step, 1);
  t.true(Math.abs((progress?.tokensPerSecond ?? 0) - 64 / 1.3) < 1e-9);
  const events = await until(async () => {
    const e = await f.history.workerEvents('job-a');
    return e.length > 0 ? e : undefined;
  });
  t.is(events[0]!.kind, 'checkpoint-saved');
  t.is(events[0]!.checkpoint?.bytes, 1234);
  const heard = await until(async () => {
    const h = await f.history.lastHeard('job-a', 1);
    return h.size === 2 ? h : undefined;
  });
  t.true([...heard.values()].every((ms) => Date.now() - ms < 5000));
  t.true(f.service.reportsIngested >= 3);
});

test('a wrong token, a stale attempt or an unknown job is refused before any report is read', async (t) => {
  const f = await start(t, [job('job-b', 2, 'secret-b', 2)]);
  const cases: [TelemetryIdentity, RegExp][] = [
    [identity('job-b', 0, 'guess', 2), /wrong telemetry token/],
    [identity('job-b', 0, 'secret-b', 1), /is on attempt 2, not 1/],
    [identity('job-b', 5, 'secret-b', 2), /rank 5 is outside the job's 2 ranks/],
    [identity('nope', 0, 'x', 1), /no job 'nope'/],
  ];
  for (const [who, expected] of cases) {
    const client = new TelemetryClient(f.address, who, () => {}, 50);
    client.reportStep(step(1, 1));
    const error = await until(() => Promise.resolve(client.error));
    t.regex(error.message, expected);
    await client.close();
  }
  t.deepEqual(await f.history.steps('job-b'), []);
  t.is(f.service.reportsIngested, 0);
});

test('a rank whose compute stays well above the median is flagged as a straggler', (t) => {
  const aggregator = new StepAggregator({
    worldSize: 4,
    flopsPerStep: 1e9,
    peakFlopsPerDevice: 1e9,
    stragglerRatio: 1.25,
    stragglerSteps: 3,
  });
  const flagged: number[][] = [];
  for (let s = 1; s <= 4; s++) {
    for (let rank = 0; rank < 4; rank++) {
      const compute = rank === 2 ? 1.6 : 1.0;
      const summary = aggregator.add({
        rank,
        step: s,
        loss: 1,
        tokens: 100,
        lr: 1,
        gradNorm: 1,
        stepSeconds: compute + 0.1,
        compute,
        commWait: 0,
        data: 0,
        optimizer: 0,
        checkpoint: 0,
        deviceBytesCurrent: 0,
        deviceBytesPeak: 0,
        hostBytes: 0,
        bytesSent: 0,
        timeMs: s,
      });
      if (summary) flagged.push(summary.stragglers);
    }
  }
  // Slow for three steps in a row before it is called a straggler: one slow step is noise.
  t.deepEqual(flagged, [[], [], [2], [2]]);
  const mfuCheck = aggregator.add({
    rank: 0,
    step: 9,
    loss: 1,
    tokens: 1,
    lr: 1,
    gradNorm: 1,
    stepSeconds: 0.5,
    compute: 0.5,
    commWait: 0,
    data: 0,
    optimizer: 0,
    checkpoint: 0,
    deviceBytesCurrent: 0,
    deviceBytesPeak: 0,
    hostBytes: 0,
    bytesSent: 0,
    timeMs: 0,
  });
  t.is(mfuCheck, undefined, 'a step completes only when every rank has reported it');
});
