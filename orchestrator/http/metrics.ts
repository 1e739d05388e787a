// Prometheus metrics (/metrics), in Prometheus' naming style: base units (seconds, bytes, ratios
// 0..1), `_total` only on counters, the job's id in a `job_id` label (`job` is Prometheus' own
// label for the scrape job). Gauges are read from Redis at scrape time, so every orchestrator
// serving the same Redis reports the same values and a restart loses nothing. The two histograms
// (step time, checkpoint save time, over all jobs) count what this server saw arrive since it
// started, as Prometheus histograms do; rate() over them is what dashboards use.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import type { JobQueue } from '../../control/job-queue.js';
import { JOB_STATES, TERMINAL_STATES, WAITING_STATES, type JobRecord } from '../../control/job-record.js';
import { freeDevices } from '../../control/store.js';
import type { TelemetryHistory } from '../../control/telemetry-history.js';
import type { StepSummary } from '../telemetry/step-aggregator.js';
import type { LiveFeed } from './live-feed.js';
import type { JobPlan } from './views.js';
import { registerNiahGauges } from './niah-metrics.js';

/** Ended jobs keep their per-job series this long, so the scrape after the end sees final values. */
export const ENDED_JOB_RETENTION_MS = 3600_000;

const STEP_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const CHECKPOINT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export interface MetricsOptions {
  queue: JobQueue;
  history: TelemetryHistory;
  live: LiveFeed;
  getPlan: (jobId: string) => Promise<JobPlan | undefined>;
  /** The Telemetry service, for its counts of ingested and dropped reports. */
  telemetry?: TelemetryCounts;
  /**
   * Also export the process's own metrics (CPU, memory, event loop) under the standard names every
   * Prometheus client library uses (process_cpu_seconds_total, nodejs_heap_size_used_bytes), so
   * stock dashboards and alerts find them; Prometheus' job/instance labels say whose they are.
   */
  processMetrics?: boolean;
}

export interface TelemetryCounts {
  reportsIngested: number;
  /** Step reports and heartbeats dropped per job (its backlog was full) since the server started. */
  reportsDroppedByJob?: ReadonlyMap<string, number>;
}

interface JobSnapshot {
  job: JobRecord;
  last: StepSummary | undefined;
  plan: JobPlan | undefined;
}

export interface Metrics {
  registry: Registry;
  close(): void;
}

export function createMetrics(options: MetricsOptions): Metrics {
  const { queue, history, getPlan } = options;
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });

  // One read of Redis per scrape, shared by every per-job collector below.
  let snapshot: Promise<JobSnapshot[]> | undefined;
  const jobsNow = (): Promise<JobSnapshot[]> => {
    snapshot ??= (async () => {
      const now = Date.now();
      const jobs = (await queue.list()).filter(
        (j) =>
          !TERMINAL_STATES.includes(j.state) || now - (j.finishedAt ?? j.updatedAt) < ENDED_JOB_RETENTION_MS,
      );
      return Promise.all(
        jobs.map(async (job) => {
          const [steps, plan] = await Promise.all([history.steps(job.id, 1), getPlan(job.id)]);
          return { job, last: steps[0], plan };
        }),
      );
    })().finally(() => setImmediate(() => (snapshot = undefined)));
    return snapshot;
  };

  new Gauge({
    name: 'longctx_jobs',
    help: 'Jobs known to the orchestrator, by state.',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = new Map<string, number>(JOB_STATES.map((s) => [s.toLowerCase(), 0]));
      for (const job of await queue.list()) {
        const state = job.state.toLowerCase();
        counts.set(state, (counts.get(state) ?? 0) + 1);
      }
      this.reset();
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });

  new Gauge({
    name: 'longctx_queue_depth',
    help: 'Jobs waiting for a gang of devices (queued, or recovering after a failure).',
    registers: [registry],
    async collect() {
      const jobs = await queue.list({ states: [...WAITING_STATES] });
      this.set(jobs.length);
    },
  });

  new Gauge({
    name: 'longctx_node_devices',
    help: 'Devices of each registered node, by whether a job holds them.',
    labelNames: ['node', 'status'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const node of await queue.nodes()) {
        const free = freeDevices(node);
        this.set({ node: node.name, status: 'free' }, free);
        this.set({ node: node.name, status: 'held' }, node.devices - free);
      }
    },
  });

  new Gauge({
    name: 'longctx_node_up',
    help: '1 while the node agent holds its lease (heartbeats), else 0.',
    labelNames: ['node'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const node of await queue.nodes()) this.set({ node: node.name }, node.alive ? 1 : 0);
    },
  });

  new Gauge({
    name: 'longctx_job_state',
    help: '1 for the state each job is in, 0 for the others.',
    labelNames: ['job_id', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { job } of await jobsNow()) {
        for (const state of JOB_STATES)
          this.set({ job_id: job.id, state: state.toLowerCase() }, job.state === state ? 1 : 0);
      }
    },
  });

  /** A per-job gauge from the job's last step (jobs before their first step have no sample). */
  const stepGauge = (name: string, help: string, value: (s: StepSummary, job: JobRecord) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['job_id'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const { job, last } of await jobsNow()) if (last) this.set({ job_id: job.id }, value(last, job));
      },
    });
  stepGauge('longctx_job_step', 'Last complete optimizer step of the job.', (s) => s.step);
  stepGauge('longctx_job_loss', 'Training loss at the last complete step.', (s) => s.loss);
  stepGauge(
    'longctx_job_tokens_per_second',
    'Tokens per second of the last step (slowest rank).',
    (s) => s.tokensPerSecond,
  );
  stepGauge('longctx_job_mfu_ratio', 'Model FLOPs utilisation of the last step, 0..1.', (s) => s.mfu);
  stepGauge(
    'longctx_job_step_seconds',
    'Duration of the last step (the slowest rank).',
    (s) => s.stepSeconds,
  );
  stepGauge(
    'longctx_job_stragglers',
    'Ranks flagged as stragglers at the last step.',
    (s) => s.stragglers.length,
  );

  new Gauge({
    name: 'longctx_job_target_steps',
    help: 'Optimizer steps the job runs in all.',
    labelNames: ['job_id'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { job } of await jobsNow()) this.set({ job_id: job.id }, job.spec.steps);
    },
  });

  new Counter({
    name: 'longctx_job_restarts_total',
    help: 'Failures of the job counted against max_restarts (each one restarted it from a checkpoint).',
    labelNames: ['job_id'],
    registers: [registry],
    async collect() {
      // The count lives in the job record; the counter mirrors it (it only ever grows per job).
      this.reset();
      for (const { job } of await jobsNow()) this.inc({ job_id: job.id }, job.restarts);
    },
  });

  const rankGauge = (name: string, help: string, value: (r: StepSummary['ranks'][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['job_id', 'rank'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const { job, last } of await jobsNow()) {
          for (const r of last?.ranks ?? []) this.set({ job_id: job.id, rank: String(r.rank) }, value(r));
        }
      },
    });
  rankGauge(
    'longctx_rank_device_memory_bytes',
    'Device bytes a rank held at the end of its last step.',
    (r) => r.deviceBytesCurrent,
  );
  rankGauge(
    'longctx_rank_device_memory_peak_bytes',
    'Peak device bytes of a rank (its arena).',
    (r) => r.deviceBytesPeak,
  );
  rankGauge('longctx_rank_compute_seconds', 'Compute time of a rank in the last step.', (r) => r.compute);
  rankGauge(
    'longctx_rank_comm_wait_seconds',
    'Time a rank waited on communication in the last step.',
    (r) => r.commWait,
  );

  const planGauge = (name: string, help: string, value: (p: JobPlan) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['job_id'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const { job, plan } of await jobsNow()) if (plan) this.set({ job_id: job.id }, value(plan));
      },
    });
  planGauge(
    'longctx_job_planned_device_memory_bytes',
    'Peak device bytes per rank the planner predicted.',
    (p) => p.memory.peak,
  );
  planGauge(
    'longctx_job_device_memory_budget_bytes',
    'Device byte budget per rank the job was planned against.',
    (p) => p.budgetBytes,
  );
  planGauge('longctx_job_planned_step_seconds', 'Step time the planner predicted.', (p) => p.stepSeconds);

  registerNiahGauges(registry, async () => (await jobsNow()).map((s) => s.job), history);

  const telemetry = options.telemetry;
  if (telemetry) {
    new Counter({
      name: 'longctx_telemetry_reports_total',
      help: 'Messages from ranks (steps, heartbeats, events) the Telemetry service handled since it started.',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(telemetry.reportsIngested);
      },
    });
  }

  // Dropped telemetry, per job: a job whose backlog overflowed lost step reports and heartbeats
  // (its charts have gaps). Jobs listed like the other per-job series; counts since server start.
  const dropped = telemetry?.reportsDroppedByJob;
  if (dropped) {
    new Counter({
      name: 'longctx_telemetry_reports_dropped_total',
      help: 'Step reports and heartbeats of the job the server dropped because too many waited to be stored.',
      labelNames: ['job_id'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const { job } of await jobsNow()) this.inc({ job_id: job.id }, dropped.get(job.id) ?? 0);
      },
    });
  }

  // One histogram over all jobs each: per-job histograms would multiply the series by the buckets
  // for every job, and the per-job last step time is a gauge above.
  const stepSeconds = new Histogram({
    name: 'longctx_step_duration_seconds',
    help: 'Durations of the training steps this server received, all jobs (the slowest rank of each step).',
    buckets: STEP_BUCKETS,
    registers: [registry],
  });
  const checkpointSeconds = new Histogram({
    name: 'longctx_checkpoint_save_duration_seconds',
    help: 'Time to write and commit each checkpoint this server heard of, all jobs.',
    buckets: CHECKPOINT_BUCKETS,
    registers: [registry],
  });
  const stop = options.live.listen((u) => {
    if (u.kind !== 'telemetry') return;
    const { update } = u;
    if (update.type === 'step') {
      stepSeconds.observe(update.step.stepSeconds);
    } else if (
      update.event.kind === 'checkpoint-saved' &&
      update.event.checkpoint &&
      update.event.rank === 0
    ) {
      // Every rank takes part in a save; rank 0 reports it once for the gang.
      checkpointSeconds.observe(update.event.checkpoint.saveSeconds);
    }
  });

  return { registry, close: stop };
}
