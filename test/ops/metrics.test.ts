// /metrics read back through a Prometheus text-format parser: every family is well formed, named
// and typed in Prometheus style, and carries the values that the queue, telemetry history and
// plan store hold (jobs by state, queue depth, tokens/s, loss, MFU, step time, per-rank memory,
// restarts, checkpoint time, telemetry dropped per job).
import test from 'ava';
import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format';

import { createHttpApp } from '../../orchestrator/http/app.js';
import { cpuProfile } from '../../orchestrator/plan/devices.js';
import { PlanStore } from '../../orchestrator/plan/plan-store.js';
import { planJob } from '../../orchestrator/plan/planner.js';
import { JobQueue } from '../../control/job-queue.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import { connect, cpuInventory, deletePrefix, testPrefix, waitFor } from '../helpers/control.js';
import { useRedis } from '../helpers/redis.js';
import { gangSteps, get, jobSpec, listen } from './fixtures.js';

const redis = useRedis(test);

function family(families: MetricFamily[], name: string): MetricFamily {
  const found = families.find((f) => f.name === name);
  if (!found) throw new Error(`no metric family ${name} in: ${families.map((f) => f.name).join(', ')}`);
  return found;
}

function value(families: MetricFamily[], name: string, labels: Record<string, string> = {}): number {
  const sample = family(families, name).metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v),
  );
  if (!sample) throw new Error(`${name} has no sample with ${JSON.stringify(labels)}`);
  return Number(sample.value);
}

test('/metrics parses as Prometheus text and reports the jobs, their telemetry and their plans', async (t) => {
  const connection = connect(redis().url);
  const prefix = testPrefix('metrics');
  const queue = new JobQueue(connection, prefix);
  const history = new TelemetryHistory(connection, queue.store.keys);
  const plans = new PlanStore(connection, queue.store.keys);
  const telemetry = { reportsIngested: 1234, reportsDroppedByJob: new Map<string, number>() };
  const app = createHttpApp({ queue, history, redis: connection, plans, telemetry, log: () => {} });
  await app.ready;
  const server = await listen(app);
  t.teardown(async () => {
    await server.close();
    await app.close();
    await queue.close();
    await deletePrefix(connection, prefix);
    connection.disconnect();
  });

  await queue.store.registerNode(cpuInventory('node-a', 8, 2 ** 30), 'agent-1', 60_000, 600_000, Date.now());
  const running = await queue.submit(jobSpec('trainer', 8, 50));
  const waiting = await queue.submit(jobSpec('waiter', 4, 10));
  const cancelled = await queue.submit(jobSpec('dropped', 2, 10));
  await queue.cancel(cancelled.id);
  const plan = planJob(running.spec, cpuProfile(2 ** 30, 20));
  await plans.save(running.id, plan);
  // Place and start the first job the way the scheduler and the agent do.
  const placed = await queue.store.placeJob(running.id, 'node-a', 0, 'token-1', Date.now());
  t.true(placed.ok, JSON.stringify(placed));
  const steps = gangSteps(6, 8, 2);
  for (const s of steps.slice(0, 5)) await history.recordStep(running.id, 1, s);
  await history.recordWorkerEvent(running.id, {
    kind: 'checkpoint-saved',
    rank: 0,
    attempt: 1,
    step: 5,
    message: 'checkpoint 5',
    timeMs: Date.now(),
    checkpoint: { step: 5, path: '/runs/x/step-00000005', bytes: 10_000, saveSeconds: 0.75 },
  });
  // The same save as rank 1 saw it: one checkpoint, counted once.
  await history.recordWorkerEvent(running.id, {
    kind: 'checkpoint-saved',
    rank: 1,
    attempt: 1,
    step: 5,
    message: 'checkpoint 5',
    timeMs: Date.now(),
    checkpoint: { step: 5, path: '/runs/x/step-00000005', bytes: 10_000, saveSeconds: 0.75 },
  });

  // Pub/sub keeps order: once the histograms hold step 6, both checkpoint reports have been seen.
  await history.recordStep(running.id, 1, steps[5]!);
  const id = running.id;
  telemetry.reportsDroppedByJob.set(id, 17);
  const scrape = async () => {
    const reply = await get(`${server.url}/metrics`);
    t.is(reply.status, 200);
    t.regex(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    return parsePrometheusTextFormat(reply.body);
  };
  const families = await waitFor('the sixth step in the step histogram', async () => {
    const parsed = await scrape();
    const sample = parsed.find((f) => f.name === 'longctx_step_duration_seconds')?.metrics[0];
    return Number(sample?.count) === 6 ? parsed : undefined;
  });

  const standard = (name: string) => name.startsWith('process_') || name.startsWith('nodejs_');
  for (const f of families) {
    t.regex(f.name, /^[a-z_:][a-z0-9_:]*$/, `${f.name}: Prometheus metric name`);
    t.true(f.help.length > 0, `${f.name} has help`);
    // No word twice in a row (longctx_process_process_cpu_seconds_total was one).
    t.notRegex(f.name, /(^|_)([a-z0-9]+)_\2(_|$)/, `${f.name}: a doubled prefix`);
    // Ours; the process metrics are prom-client's standard set, named as other Node services name them.
    if (!standard(f.name)) {
      t.true(f.name.startsWith('longctx_'), `${f.name}: ours start with longctx_`);
      if (f.type === 'COUNTER') t.regex(f.name, /_total$/, `${f.name}: counters end in _total`);
      else t.notRegex(f.name, /_total$/, `${f.name}: only counters end in _total`);
    }
    for (const m of f.metrics)
      for (const label of Object.keys(m.labels ?? {})) t.regex(label, /^[a-z_][a-z0-9_]*$/);
  }
  t.false(
    families.some((f) => f.metrics.some((m) => m.labels && 'job' in m.labels)),
    "no 'job' label: it is Prometheus' own",
  );

  t.is(family(families, 'longctx_jobs').type, 'GAUGE');
  t.is(value(families, 'longctx_jobs', { state: 'placed' }), 1);
  t.is(value(families, 'longctx_jobs', { state: 'queued' }), 1);
  t.is(value(families, 'longctx_jobs', { state: 'cancelled' }), 1);
  t.is(value(families, 'longctx_jobs', { state: 'running' }), 0);
  t.is(value(families, 'longctx_queue_depth'), 1);
  t.is(value(families, 'longctx_node_devices', { node: 'node-a', status: 'held' }), 8);
  t.is(value(families, 'longctx_node_devices', { node: 'node-a', status: 'free' }), 0);
  t.is(value(families, 'longctx_node_up', { node: 'node-a' }), 1);
  t.is(value(families, 'longctx_job_state', { job_id: id, state: 'placed' }), 1);
  t.is(value(families, 'longctx_job_state', { job_id: id, state: 'running' }), 0);

  const last = steps.at(-1)!;
  t.is(value(families, 'longctx_job_step', { job_id: id }), 6);
  t.is(value(families, 'longctx_job_target_steps', { job_id: id }), 50);
  t.is(value(families, 'longctx_job_loss', { job_id: id }), last.loss);
  t.is(value(families, 'longctx_job_tokens_per_second', { job_id: id }), 4096 / 0.25);
  t.true(Math.abs(value(families, 'longctx_job_mfu_ratio', { job_id: id }) - 0.2) < 1e-12);
  t.is(value(families, 'longctx_job_step_seconds', { job_id: id }), 0.25);
  t.is(value(families, 'longctx_job_stragglers', { job_id: id }), 1);
  // Jobs without steps have no telemetry samples (absent, not zero).
  t.false(family(families, 'longctx_job_loss').metrics.some((m) => m.labels?.job_id === waiting.id));

  t.is(family(families, 'longctx_job_restarts_total').type, 'COUNTER');
  t.is(value(families, 'longctx_job_restarts_total', { job_id: id }), 0);

  const peaks = family(families, 'longctx_rank_device_memory_peak_bytes').metrics.filter(
    (m) => m.labels?.job_id === id,
  );
  t.deepEqual(
    peaks.map((m) => [m.labels?.rank, Number(m.value)]).sort((a, b) => Number(a[0]) - Number(b[0])),
    Array.from({ length: 8 }, (_, r) => [String(r), last.ranks[r]!.deviceBytesPeak]),
  );
  t.is(value(families, 'longctx_rank_device_memory_bytes', { job_id: id, rank: '7' }), 1_000_007);
  t.is(value(families, 'longctx_rank_compute_seconds', { job_id: id, rank: '2' }), 0.2);
  t.is(value(families, 'longctx_job_planned_device_memory_bytes', { job_id: id }), plan.memory.peak);
  t.is(value(families, 'longctx_job_device_memory_budget_bytes', { job_id: id }), 2 ** 30);
  t.is(value(families, 'longctx_job_planned_step_seconds', { job_id: id }), plan.stepSeconds);

  const stepHistogram = family(families, 'longctx_step_duration_seconds');
  t.is(stepHistogram.type, 'HISTOGRAM');
  const stepSample = stepHistogram.metrics[0]!;
  t.is(Number(stepSample.count), 6);
  t.is(Number(stepSample.sum), 6 * 0.25);
  t.is(Number(stepSample.buckets?.['0.1']), 0);
  t.is(Number(stepSample.buckets?.['0.25']), 6);
  t.is(Number(stepSample.buckets?.['+Inf']), 6);
  const checkpointSample = family(families, 'longctx_checkpoint_save_duration_seconds').metrics[0]!;
  t.is(Number(checkpointSample.count), 1);
  t.is(Number(checkpointSample.sum), 0.75);

  t.is(value(families, 'longctx_telemetry_reports_total'), 1234);
  const dropped = family(families, 'longctx_telemetry_reports_dropped_total');
  t.is(dropped.type, 'COUNTER');
  t.is(value(families, 'longctx_telemetry_reports_dropped_total', { job_id: id }), 17);
  t.is(value(families, 'longctx_telemetry_reports_dropped_total', { job_id: waiting.id }), 0);
  // The process metrics under the names every Prometheus client library gives them.
  t.is(family(families, 'process_cpu_seconds_total').type, 'COUNTER');
  t.true(value(families, 'process_cpu_seconds_total') > 0);
  t.true(value(families, 'process_resident_memory_bytes') > 1e6);
  t.is(family(families, 'nodejs_eventloop_lag_seconds').type, 'GAUGE');
  t.false(
    families.some((f) => f.name.startsWith('longctx_process_')),
    'no process metric under our prefix',
  );
});
