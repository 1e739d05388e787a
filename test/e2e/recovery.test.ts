// Recovery end to end: a real orchestrator with its node agent, real worker gangs, real Redis.
// A rank killed with SIGKILL, a rank frozen with SIGSTOP (found by the watchdog), and the
// orchestrator itself restarted mid-job: each time the job comes back from its newest valid
// checkpoint by itself and ends with weights byte-identical to an uninterrupted run.
import { credentials, makeGenericClientConstructor, type Client } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import type { JobRecord } from '../../control/job-record.js';
import { startServer, type RunningServer, type ServerOptions } from '../../orchestrator/server.js';
import { controlService, type longctx } from '../../proto/services.js';
import { useRedis } from '../helpers/redis.js';
import { trainingSpecYaml } from '../helpers/control.js';

const redis = useRedis(test);
let root = '';
let dataPath = '';

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'longctx-recovery-'));
  await synth(join(root, 'corpus.jsonl'), { docs: 150, seed: 9 });
  dataPath = (await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 9 }))
    .indexPath;
});
test.after.always(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

const STEPS = 24;
const specYaml = (name: string) => trainingSpecYaml({ name, dataPath, devices: 4, steps: STEPS });

const ControlClient = makeGenericClientConstructor(controlService, 'Control');

interface Harness {
  server: RunningServer;
  client: Client;
  runsDir: string;
  logs: { at: number; line: string }[];
}

function serverOptions(runsDir: string, logs: Harness['logs']): ServerOptions {
  return {
    redisUrl: redis().url,
    grpcPort: 0,
    httpPort: null,
    runsDir,
    localAgent: { devices: 8, deviceMemoryBytes: 256 * 2 ** 20, measureSgemm: false },
    agent: { leaseMs: 3000, lockDurationMs: 4000, stalledIntervalMs: 2000, graceMs: 3000 },
    watchdog: { silenceMs: 3000, minStallMs: 20_000, startupMs: 30_000 },
    backoff: { baseMs: 200, maxMs: 1000 },
    log: (line) => logs.push({ at: Date.now(), line }),
  };
}

async function start(t: ExecutionContext, runsDir: string, logs: Harness['logs'] = []): Promise<Harness> {
  const server = await startServer(serverOptions(runsDir, logs));
  const client = new ControlClient(server.grpcAddress, credentials.createInsecure());
  const h = { server, client, runsDir, logs };
  t.teardown(async () => {
    client.close();
    await server.stop();
  });
  return h;
}

function unary<Req, Res>(client: Client, method: string, request: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    (client as unknown as Record<string, (r: Req, cb: (e: Error | null, r: Res) => void) => void>)[method]!(
      request,
      (e, r) => (e ? reject(e) : resolve(r)),
    ),
  );
}

async function submit(h: Harness, name: string): Promise<string> {
  const r = await unary<object, longctx.ISubmitJobResponse>(h.client, 'submitJob', {
    specYaml: specYaml(name),
  });
  if (!r.accepted) throw new Error(JSON.stringify(r.errors));
  return r.jobId!;
}

async function until<T>(what: () => Promise<T | undefined>, timeoutMs: number, describe: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await what();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${describe}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const job = (h: Harness, id: string) => h.server.queue.get(id);
const finished = (h: Harness, id: string) =>
  until(
    async () => {
      const j = await job(h, id);
      return j && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.state) ? j : undefined;
    },
    180_000,
    `job ${id} to finish`,
  );
const atStep = (h: Harness, id: string, step: number) =>
  until(
    async () => {
      const [j, p] = await Promise.all([job(h, id), h.server.history.progress(id)]);
      return j?.state === 'RUNNING' && p && p.step >= step && j.pids.length === 4 ? j : undefined;
    },
    120_000,
    `job ${id} to reach step ${step}`,
  );
const finalWeights = (h: Harness, id: string) =>
  readFile(join(h.runsDir, id, 'checkpoints', `step-${String(STEPS).padStart(8, '0')}`, 'model.safetensors'));

let reference: Promise<Buffer> | undefined;
/** The uninterrupted run every recovered run is compared with (computed once, on its own server). */
function uninterrupted(): Promise<Buffer> {
  reference ??= (async () => {
    // Its own server, stopped before the test's: one agent may serve the node at a time.
    const runsDir = join(root, 'runs-reference');
    const server = await startServer(serverOptions(runsDir, []));
    const client = new ControlClient(server.grpcAddress, credentials.createInsecure());
    const h = { server, client, runsDir, logs: [] };
    try {
      const id = await submit(h, 'reference');
      const done = await finished(h, id);
      if (done.state !== 'SUCCEEDED') throw new Error(`reference run ${done.state}: ${done.message}`);
      return await finalWeights(h, id);
    } finally {
      client.close();
      await server.stop();
    }
  })();
  return reference;
}

async function expectRecovered(t: ExecutionContext, h: Harness, id: string, done: JobRecord): Promise<void> {
  t.is(done.state, 'SUCCEEDED', done.message);
  t.true(done.attempt >= 2, `attempt ${done.attempt}`);
  const events = await h.server.queue.history(id);
  t.true(
    events.some((e) => e.state === 'RECOVERING'),
    events.map((e) => `${e.state}: ${e.message}`).join('\n'),
  );
  const resumed = (await h.server.history.workerEvents(id)).filter((e) => e.kind === 'resumed');
  t.true(resumed.length > 0, 'the new attempt resumed from a checkpoint');
  t.true(
    (await finalWeights(h, id)).equals(await uninterrupted()),
    'final weights byte-identical to the uninterrupted run',
  );
}

test.serial('SIGKILL of a random rank: the job resumes by itself and ends byte-identical', async (t) => {
  await uninterrupted();
  const h = await start(t, join(root, 'runs-kill'));
  const id = await submit(h, 'kill');
  const running = await atStep(h, id, 6);
  const victim = running.pids[Math.floor(Math.random() * running.pids.length)]!;
  process.kill(victim, 'SIGKILL');
  const done = await finished(h, id);
  await expectRecovered(t, h, id, done);
  t.is(done.restarts, 1);
});

test.serial(
  'SIGSTOP of a rank: the watchdog brings the gang down within 2 s and the job comes back',
  async (t) => {
    await uninterrupted();
    const logs: Harness['logs'] = [];
    const h = await start(t, join(root, 'runs-stop'), logs);
    const id = await submit(h, 'hang');
    const running = await atStep(h, id, 6);
    const victim = running.pids[1]!;
    process.kill(victim, 'SIGSTOP');
    t.teardown(() => {
      try {
        process.kill(victim, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    const recovering = await until(
      async () => {
        const events = await h.server.queue.history(id);
        return events.find((e) => e.state === 'RECOVERING');
      },
      60_000,
      'the hung attempt to end',
    );
    const detected = logs.find((l) => l.line.includes(`watchdog: job ${id}`));
    t.truthy(detected, 'the watchdog said why it stopped the gang');
    t.regex(detected!.line, /silent|no step/);
    const downMs = recovering.timeMs - detected!.at;
    t.log(`gang down ${downMs} ms after detection`);
    t.true(downMs <= 2000, `gang down ${downMs} ms after detection`);
    await expectRecovered(t, h, id, await finished(h, id));
  },
);

test.serial(
  'restarting the orchestrator mid-job loses nothing: the job finishes byte-identical',
  async (t) => {
    await uninterrupted();
    const runsDir = join(root, 'runs-restart');
    const first = await startServer(serverOptions(runsDir, []));
    const client = new ControlClient(first.grpcAddress, credentials.createInsecure());
    const id = await (async () => {
      const r = await unary<object, longctx.ISubmitJobResponse>(client, 'submitJob', {
        specYaml: specYaml('restart'),
      });
      return r.jobId!;
    })();
    client.close();
    await atStep({ server: first, client, runsDir, logs: [] }, id, 6);
    await first.stop();
    const h = await start(t, runsDir);
    const done = await finished(h, id);
    t.is(done.state, 'SUCCEEDED', done.message);
    t.true(done.attempt >= 2, 'the shutdown interrupted the job and a new attempt finished it');
    t.is(done.restarts, 0, 'a deliberate shutdown is not counted against max_restarts');
    t.true((await finalWeights(h, id)).equals(await uninterrupted()));
  },
);
