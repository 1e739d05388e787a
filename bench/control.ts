// `npm run bench -- control --json [--jobs 1000] [--probes 200] [--reports 50000]`: the control
// plane under load, on a private embedded Redis (started here, removed at the end).
//
// Scheduling: the real JobQueue (submit: validation against the nodes, create-job script, BullMQ
// pending entry) and the real gang Scheduler (event-driven passes, at least every 500 ms as the
// server runs it) in this process, the orchestrator's role; one node registered with 8 CPU devices
// the way an agent registers it (store.registerNode, lease held for the run); and, in a child
// process in the agent's role, bench/ranks/control-agent.ts, which ends each attempt as SUCCEEDED
// as soon as it is placed (finishAttempt, what an agent calls when its gang exits): the devices
// are freed, so every job really gets placed. No worker processes are launched: this measures the
// control plane, not process start-up. "Placed" is when this process receives the job's PLACED
// event (published by the place-job script itself); "submit" is when queue.submit() was called.
//   scenario burst:   `--jobs` one-device jobs submitted all at once (concurrent submit calls, as
//                     from many clients), 8 devices: the queue holds nearly all of them at first,
//                     and a job's latency includes waiting for the ones ahead of it to be placed
//                     and to end. Also placements_per_s over the whole burst, and the largest
//                     number of jobs waiting at once (max_queued).
//   scenario backlog: `--jobs` 8-device jobs wait (a resident one-device job holds a device, so
//                     none fits) while `--probes` one-device jobs are submitted one at a time; each
//                     fits at once (backfill), so its latency is the scheduler's reaction with
//                     1000 jobs in the queue: every pass reads and orders all of them. Also
//                     scheduler_pass_ms, the median time of one pass with that queue (nothing to
//                     place), timed by calling Scheduler.runPass() afterwards.
//
// Telemetry: the real orchestrator server (startServer: gRPC Control + Telemetry, scheduler,
// watchdog; no local agent) with a job placed on a registered node; a child process
// (bench/ranks/telemetry-sender.ts) opens one TelemetryClient stream per rank of the job (4), and
// every rank sends `--reports` step reports as fast as it can. telemetry_reports_per_s = the
// server's reportsIngested counter over the time it took to go from 10 % to 90 % of everything
// sent (the server is saturated then: it receives faster than it handles). The server's handling
// runs on its one Node thread; Redis (history: liveness, per-step records) is another process.
// server_cpu_fraction is this process's CPU seconds ÷ wall seconds over the same interval.
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startEmbeddedRedis, type EmbeddedRedis } from '../cluster/embedded-redis.js';
import type { NodeInventory } from '../cluster/inventory.js';
import { watchJobEvents, type JobEvent } from '../control/events.js';
import { connectRedis, JobQueue } from '../control/job-queue.js';
import { Scheduler } from '../control/scheduler.js';
import { startServer } from '../orchestrator/server.js';
import { parseSpec } from '../orchestrator/spec/validate.js';
import type { JobSpec } from '../core/job-spec.js';
import { RankGroup } from '../worker-native/host/rank-processes.js';
import type { ControlAgentJob } from './ranks/control-agent.js';
import type { TelemetrySenderJob } from './ranks/telemetry-sender.js';
import type { Emit } from './run.js';

const NODE = 'bench-node';
const DEVICES = 8;
const AGENT_ID = 'bench-control-agent';
const LEASE_MS = 30 * 60_000;
const TELEMETRY_RANKS = 4;

function option(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name);
  const value = at >= 0 ? Number(args[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

function inventory(): NodeInventory {
  return {
    node: NODE,
    hostname: 'bench',
    kind: 'cpu',
    devices: Array.from({ length: DEVICES }, (_, index) => ({ index, name: 'cpu', memoryBytes: 1 << 30 })),
    threadsPerDevice: 1,
  };
}

/** A validated spec, as Control's Submit hands it to the queue. */
function spec(name: string, devices: number): { spec: JobSpec; specYaml: string } {
  const specYaml = [
    `name: ${name}`,
    'model: { preset: tiny }',
    'data: { path: /nonexistent/corpus.tokens }',
    `seq_len: ${2 * devices * 8}`,
    `devices: ${devices}`,
    'steps: 1',
    '',
  ].join('\n');
  const parsed = parseSpec(specYaml);
  if (!parsed.ok) throw new Error(`bench spec ${name} is invalid: ${JSON.stringify(parsed.errors)}`);
  return { spec: parsed.spec, specYaml };
}

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Resolves when `check` holds, polling; rejects naming `what` after `timeoutMs` or when `failed` says why. */
async function until(
  what: string,
  check: () => boolean,
  timeoutMs: number,
  failed: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    const why = failed();
    if (why !== undefined) throw new Error(`control bench: ${why} (waiting for ${what})`);
    if (Date.now() > deadline) throw new Error(`control bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The orchestrator's side (queue + scheduler) and the agent stand-in, in a fresh key prefix. */
async function controlPlane(redis: EmbeddedRedis, prefix: string, finish: string[]) {
  const connection = connectRedis(redis.url);
  const queue = new JobQueue(connection, prefix);
  const registered = await queue.store.registerNode(inventory(), AGENT_ID, LEASE_MS, LEASE_MS, Date.now());
  if (!registered.ok) throw new Error(`node ${NODE} is held by ${registered.holder}`);
  const placedAt = new Map<string, number>();
  const states = new Map<string, JobEvent['state']>();
  const depth = { now: 0, max: 0 };
  const events = await watchJobEvents(connection, queue.store.keys, (e) => {
    if (e.state === 'QUEUED' && !states.has(e.jobId)) depth.max = Math.max(depth.max, ++depth.now);
    if (e.state === 'PLACED' && !placedAt.has(e.jobId)) {
      placedAt.set(e.jobId, performance.now());
      depth.now--;
    }
    states.set(e.jobId, e.state);
  });
  const schedulerConnection = connectRedis(redis.url);
  const scheduler = new Scheduler({
    redis: schedulerConnection,
    prefix,
    pollMs: 500,
    onError: (err) => process.stderr.write(`scheduler: ${String(err)}\n`),
  });
  const agent = new RankGroup({
    script: fileURLToPath(new URL('./ranks/control-agent.js', import.meta.url)),
    ranks: [0],
    args: () => [JSON.stringify({ redisUrl: redis.url, prefix, finish } satisfies ControlAgentJob)],
  });
  let agentError: string | undefined;
  agent
    .message(0, (m) => m.error !== undefined)
    .then(
      (m) => (agentError = `agent stand-in: ${String(m.error)}`),
      (err: unknown) => (agentError = String(err)),
    );
  await agent.message(0, (m) => m.ready === true);
  await scheduler.start();
  const submit = async (name: string, devices: number) => {
    const started = performance.now();
    const result = await queue.submit(spec(name, devices));
    return { id: result.id, started };
  };
  return {
    queue,
    scheduler,
    placedAt,
    states,
    submit,
    failed: () => agentError,
    /** The most jobs waiting at once, from the events. */
    maxQueued: () => depth.max,
    async stop() {
      await scheduler.stop();
      await agent.stop();
      await events.close();
      await queue.close();
      connection.disconnect();
      schedulerConnection.disconnect();
    },
  };
}

async function burst(redis: EmbeddedRedis, jobs: number) {
  const plane = await controlPlane(redis, `bench-burst-${process.pid}`, ['burst']);
  try {
    // All at once, as many clients submitting together would: the queue fills faster than devices
    // free up, so it holds (nearly) all of them at first.
    const first = performance.now();
    const submitted = await Promise.all(Array.from({ length: jobs }, () => plane.submit('burst', 1)));
    const submitSeconds = (performance.now() - first) / 1000;
    await until(
      `${jobs} placements`,
      () => submitted.every((s) => plane.placedAt.has(s.id)),
      300_000,
      plane.failed,
    );
    const last = Math.max(...submitted.map((s) => plane.placedAt.get(s.id)!));
    await until(
      'every job to end',
      () => submitted.every((s) => plane.states.get(s.id) === 'SUCCEEDED'),
      60_000,
      plane.failed,
    );
    return {
      latencies: submitted.map((s) => plane.placedAt.get(s.id)! - s.started),
      placementsPerSecond: jobs / ((last - first) / 1000),
      submitSeconds,
      maxQueued: plane.maxQueued(),
    };
  } finally {
    await plane.stop();
  }
}

async function backlog(redis: EmbeddedRedis, jobs: number, probes: number) {
  const plane = await controlPlane(redis, `bench-backlog-${process.pid}`, ['probe']);
  try {
    const resident = await plane.submit('resident', 1);
    await until('the resident job', () => plane.placedAt.has(resident.id), 30_000, plane.failed);
    const waiting: string[] = [];
    for (let i = 0; i < jobs; i++) waiting.push((await plane.submit('backlog', DEVICES)).id);
    const latencies: number[] = [];
    for (let i = 0; i < probes; i++) {
      const probe = await plane.submit('probe', 1);
      await until(`probe ${probe.id} placed`, () => plane.placedAt.has(probe.id), 60_000, plane.failed);
      latencies.push(plane.placedAt.get(probe.id)! - probe.started);
      await until(
        `probe ${probe.id} ended`,
        () => plane.states.get(probe.id) === 'SUCCEEDED',
        60_000,
        plane.failed,
      );
    }
    const stillWaiting = (await plane.queue.list({ states: ['QUEUED'] })).length;
    if (stillWaiting !== jobs) throw new Error(`backlog: ${stillWaiting} jobs queued, expected ${jobs}`);
    // What one pass costs with this queue and nothing to place: the floor under every latency above.
    const passes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      await plane.scheduler.runPass();
      passes.push(performance.now() - started);
    }
    return { latencies, passMs: percentile(passes, 50) };
  } finally {
    await plane.stop();
  }
}

async function telemetry(redis: EmbeddedRedis, reportsPerStream: number) {
  const runsDir = await mkdtemp(join(tmpdir(), 'longctx-bench-control-'));
  const server = await startServer({
    redisUrl: redis.url,
    grpcPort: 0,
    httpPort: null,
    localAgent: false,
    runsDir,
    log: () => {},
  });
  let sender: RankGroup | undefined;
  try {
    const store = server.queue.store;
    const registered = await store.registerNode(inventory(), AGENT_ID, LEASE_MS, LEASE_MS, Date.now());
    if (!registered.ok) throw new Error(`node ${NODE} is held by ${registered.holder}`);
    const submitted = await server.queue.submit(spec('telemetry', TELEMETRY_RANKS));
    const jobId = submitted.id;
    let job = await server.queue.get(jobId);
    for (const deadline = Date.now() + 30_000; job?.state !== 'PLACED'; job = await server.queue.get(jobId)) {
      if (Date.now() > deadline) throw new Error(`telemetry job ${jobId} was not placed`);
      await new Promise((r) => setTimeout(r, 20));
    }
    sender = new RankGroup({
      script: fileURLToPath(new URL('./ranks/telemetry-sender.js', import.meta.url)),
      ranks: [0],
      args: () => [
        JSON.stringify({
          address: server.grpcAddress,
          jobId,
          attempt: job.attempt,
          token: job.token ?? '',
          world: TELEMETRY_RANKS,
          reportsPerStream,
        } satisfies TelemetrySenderJob),
      ],
    });
    const ready = await sender.message(0, (m) => m.ready === true || m.error !== undefined);
    if (ready.error !== undefined) throw new Error(`telemetry sender: ${ready.error as string}`);
    const total = TELEMETRY_RANKS * reportsPerStream;
    const base = server.telemetry.reportsIngested;
    const ingested = () => server.telemetry.reportsIngested - base;
    await until('10 % of the reports', () => ingested() >= 0.1 * total, 300_000);
    const [t0, n0, cpu0] = [performance.now(), ingested(), process.cpuUsage()];
    await until('90 % of the reports', () => ingested() >= 0.9 * total, 300_000);
    const [t1, n1, cpu] = [performance.now(), ingested(), process.cpuUsage(cpu0)];
    const sent = await sender.message(0, (m) => m.sent !== undefined || m.error !== undefined);
    if (sent.error !== undefined) throw new Error(`telemetry sender: ${sent.error as string}`);
    await until('every report', () => ingested() >= total, 300_000);
    const seconds = (t1 - t0) / 1000;
    return {
      reportsPerSecond: (n1 - n0) / seconds,
      serverCpuFraction: (cpu.user + cpu.system) / 1e6 / seconds,
      senderSeconds: Number(sent.seconds),
      total,
    };
  } finally {
    await sender?.stop();
    await server.stop();
    await rm(runsDir, { recursive: true, force: true });
  }
}

export async function run(emit: Emit, args: string[]): Promise<void> {
  const jobs = option(args, '--jobs', 1000);
  const probes = option(args, '--probes', 200);
  const reports = option(args, '--reports', 50_000);
  const common = { cores: cpus().length };
  const record = (metric: string, value: number, unit: string, extra: Record<string, number | string>) =>
    emit({
      bench: 'control',
      metric,
      value: Number(value.toPrecision(4)),
      unit,
      ...extra,
      ...common,
      load1: Number(loadavg()[0]!.toFixed(2)),
    });
  const redis = await startEmbeddedRedis();
  try {
    const b = await burst(redis, jobs);
    const burstExtra = { scenario: 'burst', jobs, devices: DEVICES, job_devices: 1 };
    record('submit_to_placed_p50_ms', percentile(b.latencies, 50), 'ms', burstExtra);
    record('submit_to_placed_p99_ms', percentile(b.latencies, 99), 'ms', burstExtra);
    record('placements_per_s', b.placementsPerSecond, 'jobs/s', {
      ...burstExtra,
      submit_s: Number(b.submitSeconds.toFixed(2)),
      max_queued: b.maxQueued,
    });

    const q = await backlog(redis, jobs, probes);
    const backlogExtra = { scenario: 'backlog', queued: jobs, probes, devices: DEVICES, job_devices: 1 };
    record('submit_to_placed_p50_ms', percentile(q.latencies, 50), 'ms', backlogExtra);
    record('submit_to_placed_p99_ms', percentile(q.latencies, 99), 'ms', backlogExtra);
    record('scheduler_pass_ms', q.passMs, 'ms', backlogExtra);

    const tm = await telemetry(redis, reports);
    const telemetryExtra = { streams: TELEMETRY_RANKS, reports: tm.total };
    record('telemetry_reports_per_s', tm.reportsPerSecond, 'reports/s', {
      ...telemetryExtra,
      sender_s: Number(tm.senderSeconds.toFixed(2)),
    });
    record('server_cpu_fraction', tm.serverCpuFraction, 'cores', telemetryExtra);
  } finally {
    await redis.stop();
  }
}
