// The HTTP side against a real Redis with the real queue, telemetry history and plan store: the
// JSON API the dashboard reads, its two event streams (snapshot first, then live changes with
// nothing missed or repeated), the admin token, and the static dashboard files.
import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { createHttpApp, type HttpApp } from '../../orchestrator/http/app.js';
import type { JobDetail, JobRow } from '../../orchestrator/http/views.js';
import { cpuProfile } from '../../orchestrator/plan/devices.js';
import { PlanStore } from '../../orchestrator/plan/plan-store.js';
import { planJob } from '../../orchestrator/plan/planner.js';
import { JobQueue } from '../../control/job-queue.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import type { StepSummary } from '../../orchestrator/telemetry/step-aggregator.js';
import { connect, cpuInventory, deletePrefix, tempDir, testPrefix } from '../helpers/control.js';
import { useRedis } from '../helpers/redis.js';
import { gangSteps, get, jobSpec, listen, SseReader, type Listening } from './fixtures.js';

const redis = useRedis(test);

interface Fixture {
  queue: JobQueue;
  history: TelemetryHistory;
  plans: PlanStore;
  app: HttpApp;
  server: Listening;
  jobId: string;
  close(): Promise<void>;
}

/** A queue with one 8-device node and one submitted 8-rank job, served by the app. */
async function start(
  name: string,
  extra: { adminToken?: string; dashboardDir?: string } = {},
): Promise<Fixture> {
  const connection = connect(redis().url);
  const prefix = testPrefix(name);
  const queue = new JobQueue(connection, prefix);
  const history = new TelemetryHistory(connection, queue.store.keys);
  const plans = new PlanStore(connection, queue.store.keys);
  await queue.store.registerNode(cpuInventory('node-a', 8), 'agent-1', 60_000, 600_000, Date.now());
  const submitted = await queue.submit(jobSpec('web', 8, 100));
  const jobId = submitted.id;
  await plans.save(jobId, planJob(submitted.spec, cpuProfile(1 << 30, 20)));
  const app = createHttpApp({
    queue,
    history,
    redis: connection,
    plans,
    processMetrics: false,
    log: () => {},
    ...extra,
  });
  await app.ready;
  const server = await listen(app);
  return {
    queue,
    history,
    plans,
    app,
    server,
    jobId,
    close: async () => {
      await server.close();
      await app.close();
      await queue.close();
      await deletePrefix(connection, prefix);
      connection.disconnect();
    },
  };
}

test('the jobs table and a job detail carry the queue record joined with its telemetry', async (t) => {
  const f = await start('api');
  t.teardown(() => f.close());
  const steps = gangSteps(4, 8, 5);
  for (const s of steps) await f.history.recordStep(f.jobId, 1, s);

  const list = await get(`${f.server.url}/api/jobs`);
  t.is(list.status, 200);
  t.regex(String(list.headers['content-type']), /application\/json/);
  const { jobs } = JSON.parse(list.body) as { jobs: JobRow[] };
  t.is(jobs.length, 1);
  const row = jobs[0]!;
  t.like(row, { id: f.jobId, state: 'QUEUED', devices: 8, step: 4, totalSteps: 100, restarts: 0 });
  t.is(row.etaSeconds, 96 * 0.25);
  t.is(row.loss, steps[3]!.loss);
  t.is(row.tokensPerSecond, 4096 / 0.25);
  t.true(Math.abs(row.mfu! - 0.2) < 1e-12, `mfu ${row.mfu}`);

  const detailReply = await get(`${f.server.url}/api/jobs/${f.jobId}`);
  t.is(detailReply.status, 200);
  const detail = JSON.parse(detailReply.body) as JobDetail;
  t.deepEqual(detail.series.step, [1, 2, 3, 4]);
  t.deepEqual(
    detail.series.loss,
    steps.map((s) => s.loss),
  );
  t.is(detail.latest?.ranks.length, 8);
  // Rank 5 computes twice as long: flagged from the third step on.
  t.deepEqual(detail.latest?.stragglers, [5]);
  t.deepEqual(
    detail.rankPeakBytes,
    Array.from({ length: 8 }, (_, r) => 3_000_000 + 1000 * r + 4),
  );
  t.is(detail.plan?.shards.length, 8);
  t.false('candidates' in (detail.plan ?? {}));
  t.is(detail.spec.seqLen, 2 * 8 * 8);
  t.is(detail.events[0]?.state, 'QUEUED');
});

test('unknown jobs and routes answer 404, writes 405, with a JSON error saying why', async (t) => {
  const f = await start('errors');
  t.teardown(() => f.close());
  const missing = await get(`${f.server.url}/api/jobs/nope-1-abcd`);
  t.is(missing.status, 404);
  t.deepEqual(JSON.parse(missing.body), { error: "no job 'nope-1-abcd'" });
  t.is((await get(`${f.server.url}/api/jobs/nope-1-abcd/stream`)).status, 404);
  t.is((await get(`${f.server.url}/api/nothing`)).status, 404);
  const post = await get(`${f.server.url}/api/jobs`, {}, 'POST');
  t.is(post.status, 405);
  t.regex(post.body, /read-only/);
});

test('a job stream sends the detail, then each new step, worker event and state change once', async (t) => {
  const f = await start('jobstream');
  t.teardown(() => f.close());
  const steps = gangSteps(6, 8);
  for (const s of steps.slice(0, 2)) await f.history.recordStep(f.jobId, 1, s);
  const sse = new SseReader(`${f.server.url}/api/jobs/${f.jobId}/stream`);
  t.teardown(() => sse.close());
  t.is(await sse.opened, 200);
  const snapshot = await sse.next<JobDetail>('snapshot');
  t.deepEqual(snapshot.series.step, [1, 2]);

  for (const s of steps.slice(2)) await f.history.recordStep(f.jobId, 1, s);
  const last = await sse.next<StepSummary>('step', (s) => s.step === 6);
  t.is(last.ranks.length, 8);
  t.deepEqual(
    sse.events.filter((e) => e.event === 'step').map((e) => (e.data as StepSummary).step),
    [3, 4, 5, 6],
  );

  await f.history.recordWorkerEvent(f.jobId, {
    kind: 'checkpoint-saved',
    rank: 0,
    attempt: 1,
    step: 6,
    message: 'checkpoint 6',
    timeMs: Date.now(),
    checkpoint: { step: 6, path: '/runs/x/checkpoints/step-00000006', bytes: 1234, saveSeconds: 0.5 },
  });
  // Rank 3's copy of a gang-wide event is not sent (rank 0 speaks for the gang).
  await f.history.recordWorkerEvent(f.jobId, {
    kind: 'started',
    rank: 3,
    attempt: 1,
    step: 0,
    message: 'started',
    timeMs: Date.now(),
  });
  await f.history.recordWorkerEvent(f.jobId, {
    kind: 'error',
    rank: 3,
    attempt: 1,
    step: 6,
    message: 'disk full',
    timeMs: Date.now(),
  });
  await sse.next('worker', (e: { kind: string }) => e.kind === 'error');
  t.deepEqual(
    sse.events.filter((e) => e.event === 'worker').map((e) => (e.data as { kind: string }).kind),
    ['checkpoint-saved', 'error'],
  );

  await f.queue.cancel(f.jobId);
  const state = await sse.next<{ event: { state: string }; job: JobRow }>('state');
  t.is(state.event.state, 'CANCELLED');
  t.is(state.job.state, 'CANCELLED');
  t.is(state.job.etaSeconds, null);
});

test('a restart that replays steps replaces them in the series instead of going back in x', async (t) => {
  const f = await start('replay');
  t.teardown(() => f.close());
  for (const s of gangSteps(5, 8)) await f.history.recordStep(f.jobId, 1, s);
  // Resumed from a checkpoint at step 3: steps 4 and 5 come again.
  for (const s of gangSteps(2, 8, -1, 4)) await f.history.recordStep(f.jobId, 2, s);
  const detail = JSON.parse((await get(`${f.server.url}/api/jobs/${f.jobId}`)).body) as JobDetail;
  t.deepEqual(detail.series.step, [1, 2, 3, 4, 5]);
});

test('the table stream sends every row, then a row whenever a job steps or changes state', async (t) => {
  const f = await start('tablestream');
  t.teardown(() => f.close());
  const sse = new SseReader(`${f.server.url}/api/stream`);
  t.teardown(() => sse.close());
  const rows = await sse.next<JobRow[]>('jobs');
  t.deepEqual(
    rows.map((r) => r.id),
    [f.jobId],
  );
  for (const s of gangSteps(3, 8)) await f.history.recordStep(f.jobId, 1, s);
  const stepped = await sse.next<JobRow>('job', (r) => r.step === 3);
  t.is(stepped.tokensPerSecond, 4096 / 0.25);
  await f.queue.cancel(f.jobId);
  const cancelled = await sse.next<JobRow>('job', (r) => r.state === 'CANCELLED');
  t.is(cancelled.id, f.jobId);
});

test('with an admin token every route but /healthz needs it, as a bearer header or the sign-in cookie', async (t) => {
  const token = 's3cret-token';
  const f = await start('auth', { adminToken: token });
  t.teardown(() => f.close());
  const url = f.server.url;
  t.is((await get(`${url}/healthz`)).status, 200);
  for (const path of ['/api/jobs', '/metrics', '/', `/api/jobs/${f.jobId}`]) {
    const denied = await get(`${url}${path}`);
    t.is(denied.status, 401, path);
    t.regex(denied.body, /admin token/);
  }
  t.is((await get(`${url}/api/jobs`, { authorization: 'Bearer wrong-token!' })).status, 401);
  t.is((await get(`${url}/api/jobs`, { authorization: `Bearer ${token}` })).status, 200);
  t.is((await get(`${url}/metrics`, { authorization: `Bearer ${token}` })).status, 200);

  t.is((await get(`${url}/?token=nope`)).status, 401);
  const signIn = await get(`${url}/?token=${token}`);
  t.is(signIn.status, 303);
  t.is(signIn.headers.location, '/');
  const cookie = String(signIn.headers['set-cookie']?.[0]).split(';')[0]!;
  t.regex(String(signIn.headers['set-cookie']?.[0]), /HttpOnly/);
  t.is((await get(`${url}/api/jobs`, { cookie })).status, 200);
  const sse = new SseReader(`${url}/api/stream`, { cookie });
  t.teardown(() => sse.close());
  t.is(await sse.opened, 200);
});

test('dashboard files are served from the built folder only, and a missing build says how to build', async (t) => {
  const dir = await tempDir('dash');
  t.teardown(() => dir.remove());
  const built = join(dir.path, 'built');
  await mkdir(built);
  await writeFile(join(built, 'index.html'), '<!doctype html><title>longctx</title>');
  await writeFile(join(built, 'app.js'), 'console.log(1);');
  await writeFile(join(dir.path, 'secret.js'), 'nope');
  const f = await start('static', { dashboardDir: built });
  t.teardown(() => f.close());
  const index = await get(`${f.server.url}/`);
  t.is(index.status, 200);
  t.regex(String(index.headers['content-type']), /text\/html/);
  t.regex(String(index.headers['content-security-policy']), /default-src 'self'/);
  t.is((await get(`${f.server.url}/app.js`)).body, 'console.log(1);');
  t.is((await get(`${f.server.url}/..%2Fsecret.js`)).status, 404);
  t.is((await get(`${f.server.url}/missing.js`)).status, 404);

  const unbuilt = await start('unbuilt', { dashboardDir: join(dir.path, 'nothing-here') });
  t.teardown(() => unbuilt.close());
  const reply = await get(`${unbuilt.server.url}/`);
  t.is(reply.status, 503);
  t.regex(reply.body, /make build/);
});
