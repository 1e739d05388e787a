// Durable control state end to end, as an operator meets it: `longctx server` (the real CLI, in
// its own process, with its embedded Redis keeping data in runs/.state) is killed with SIGKILL
// together with its redis-server while one job has finished, one is running and two are queued.
// Started again on the same runs folder it finds every job as it was: the finished one with its
// history, the queued ones still queued in order, the running one relaunched from its newest
// checkpoint under its own id and ending with weights byte-identical to an uninterrupted run.
// A second server on the same folder is refused while one runs; `longctx server stop` stops it
// with its Redis and leaves no process behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { credentials, type Client } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';

import { processAlive } from '../../cluster/process-groups.js';
import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { connectRedis, JobQueue } from '../../control/job-queue.js';
import type { JobRecord } from '../../control/job-record.js';
import { startServer } from '../../orchestrator/server.js';
import {
  isRunning,
  readServerRecord,
  stateDirOf,
  type ServerRecord,
} from '../../orchestrator/state/server-lock.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import type { longctx } from '../../proto/services.js';
import { repoRoot } from '../../core/repo-root.js';
import {
  cliServerReady,
  ControlClient,
  spawnCliServer,
  unary,
  until,
  type CliServer,
} from '../helpers/cli-server.js';
import { useRedis } from '../helpers/redis.js';
import { trainingSpecYaml } from '../helpers/control.js';

const redis = useRedis(test);
let root = '';
let dataPath = '';
const started: ChildProcess[] = [];

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'longctx-durable-'));
  await synth(join(root, 'corpus.jsonl'), { docs: 150, seed: 9 });
  dataPath = (await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 9 }))
    .indexPath;
});
test.after.always(async () => {
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  if (root) await rm(root, { recursive: true, force: true, maxRetries: 5 });
});

const STEPS = 24;
const specYaml = (name: string, devices: number, steps = STEPS) =>
  trainingSpecYaml({ name, dataPath, devices, steps });

/** The real CLI server on a runs folder (8 emulated devices), stopped after the file. */
function spawnServer(runsDir: string): CliServer {
  const server = spawnCliServer(runsDir, ['--devices', '8', '--device-memory', '256MiB']);
  started.push(server.child);
  return server;
}
const ready = (server: CliServer, runsDir: string) => cliServerReady(server, runsDir);

const finalWeights = (runsDir: string, id: string) =>
  readFile(join(runsDir, id, 'checkpoints', `step-${String(STEPS).padStart(8, '0')}`, 'model.safetensors'));

interface Session {
  record: ServerRecord;
  client: Client;
  redis: Redis;
  queue: JobQueue;
  history: TelemetryHistory;
}
function connect(t: ExecutionContext, record: ServerRecord): Session {
  const client = new ControlClient(record.grpcAddress!, credentials.createInsecure());
  const redis = connectRedis(record.redis!.url);
  const queue = new JobQueue(redis);
  const session = { record, client, redis, queue, history: new TelemetryHistory(redis, queue.store.keys) };
  t.teardown(async () => {
    client.close();
    await queue.close().catch(() => undefined);
    redis.disconnect();
  });
  return session;
}

async function submit(s: Session, name: string, devices: number, steps?: number): Promise<string> {
  const r = await unary<object, longctx.ISubmitJobResponse>(s.client, 'submitJob', {
    specYaml: specYaml(name, devices, steps),
  });
  if (!r.accepted) throw new Error(JSON.stringify(r.errors));
  return r.jobId!;
}

const ended = (s: Session, id: string, timeoutMs = 240_000) =>
  until(
    async () => {
      const j = await s.queue.get(id);
      return j && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.state) ? j : undefined;
    },
    timeoutMs,
    `job ${id} to end`,
  );

/** The uninterrupted run (an in-process server on the test's Redis). */
async function uninterrupted(): Promise<Buffer> {
  const runsDir = join(root, 'runs-reference');
  const server = await startServer({
    redisUrl: redis().url,
    grpcPort: 0,
    httpPort: null,
    runsDir,
    localAgent: { devices: 8, deviceMemoryBytes: 256 * 2 ** 20, measureSgemm: false },
    log: () => {},
  });
  const client = new ControlClient(server.grpcAddress, credentials.createInsecure());
  try {
    const submitted = await unary<object, longctx.ISubmitJobResponse>(client, 'submitJob', {
      specYaml: specYaml('reference', 4),
    });
    if (!submitted.accepted) throw new Error(JSON.stringify(submitted.errors));
    const id = submitted.jobId!;
    const done = await until(
      async () => {
        const j = await server.queue.get(id);
        return j && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.state) ? j : undefined;
      },
      240_000,
      'the reference run',
    );
    if (done.state !== 'SUCCEEDED') throw new Error(`reference run ${done.state}: ${done.message}`);
    return await finalWeights(runsDir, id);
  } finally {
    client.close();
    await server.stop();
  }
}

test.serial(
  'server and its Redis killed with SIGKILL: a restarted server finds every job as it was',
  async (t) => {
    const reference = await uninterrupted();
    const runsDir = join(root, 'runs');

    const first = spawnServer(runsDir);
    const s1 = connect(t, await ready(first, runsDir));
    const finishedId = await submit(s1, 'finished', 2, 4);
    const finished = await ended(s1, finishedId);
    t.is(finished.state, 'SUCCEEDED', finished.message);
    const finishedEvents = await s1.queue.history(finishedId);

    const runningId = await submit(s1, 'running', 4);
    const running = await until(
      async () => {
        const [j, p] = await Promise.all([s1.queue.get(runningId), s1.history.progress(runningId)]);
        return j?.state === 'RUNNING' && p && p.step >= 6 && j.pids.length === 4 ? j : undefined;
      },
      180_000,
      'the running job to reach step 6',
    );
    // Both need all 8 devices: they wait behind the running job, in submission order.
    // Long enough that neither can finish before the checks below, even on a loaded machine.
    const queuedIds = [await submit(s1, 'queued-a', 8, 5000), await submit(s1, 'queued-b', 8, 5000)];
    for (const id of queuedIds) t.is((await s1.queue.get(id))?.state, 'QUEUED');

    // The whole server at once: the node process and its redis-server.
    process.kill(s1.record.redis!.pid, 'SIGKILL');
    process.kill(first.child.pid!, 'SIGKILL');
    await first.exited;
    s1.client.close();
    s1.redis.disconnect();
    // Its ranks see their agent is gone and exit by themselves.
    await until(() => (running.pids.some(processAlive) ? undefined : true), 30_000, 'the ranks to exit');

    const second = spawnServer(runsDir);
    const record = await ready(second, runsDir);
    t.true(
      second
        .output()
        .includes(`the previous server (pid ${first.child.pid}) of ${stateDirOf(runsDir)} is gone`),
      second.output(),
    );
    const s2 = connect(t, record);

    // Still there, in submission order. The first may already hold the devices the running job
    // had: that job went to recovery (with its backoff) when its server was found dead.
    const all = await s2.queue.list();
    t.deepEqual(
      all.filter((j: JobRecord) => queuedIds.includes(j.id)).map((j) => j.id),
      queuedIds,
    );
    const [a, b] = await Promise.all(queuedIds.map((id) => s2.queue.get(id)));
    t.true(['QUEUED', 'PLACED', 'RUNNING'].includes(a!.state), a!.state);
    t.is(b!.state, 'QUEUED');
    // They would hold the node for minutes: the restart is what this test is about.
    for (const id of queuedIds) await unary(s2.client, 'cancelJob', { jobId: id });

    // A second server on the same folder is refused, and the first keeps running.
    const third = spawnServer(runsDir);
    t.is(await third.exited, 1);
    t.regex(third.output(), /another longctx server \(pid \d+, gRPC [\d.:]+\) is using .*\.state/);
    t.true(isRunning(record));

    const finishedAgain = await s2.queue.get(finishedId);
    t.is(finishedAgain?.state, 'SUCCEEDED');
    t.deepEqual(
      (await s2.queue.history(finishedId)).map((e) => [e.state, e.timeMs]),
      finishedEvents.map((e) => [e.state, e.timeMs]),
    );
    t.true((await s2.history.progress(finishedId))!.step === 4, 'its step history is kept');

    const done = await ended(s2, runningId);
    t.is(done.state, 'SUCCEEDED', done.message);
    t.is(done.id, runningId);
    t.true(done.attempt >= 2, `attempt ${done.attempt}`);
    const resumed = (await s2.history.workerEvents(runningId)).filter((e) => e.kind === 'resumed');
    t.true(resumed.length > 0, 'the relaunched attempt resumed from a checkpoint');
    t.true(
      (await finalWeights(runsDir, runningId)).equals(reference),
      'byte-identical to the uninterrupted run',
    );

    // `longctx server stop` finds it through the state folder; nothing is left running.
    const stop = spawn(
      process.execPath,
      [join(repoRoot, 'dist/orchestrator/cli/main.js'), 'server', 'stop', '--runs', runsDir],
      {
        stdio: 'ignore',
      },
    );
    t.is(await new Promise<number | null>((r) => stop.once('exit', r)), 0);
    t.is(await second.exited, 0);
    t.false(isRunning(record.redis!), 'its redis-server stopped with it');
    t.is(readServerRecord(stateDirOf(runsDir)), undefined, 'the lock is released');
  },
);
