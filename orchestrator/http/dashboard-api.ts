// The dashboard's data: JSON reads (the jobs table, one job's detail) and two server-sent-event
// streams. /api/stream sends the whole table, then a row each time a job changes state or
// completes a step (at most a few per second per job). /api/jobs/<id>/stream sends the job's
// detail, then every step (with its per-rank split), worker event and state change as it happens.
// Each stream listens before it reads its snapshot, and drops what the snapshot already holds, so
// a client misses nothing and sees nothing twice.
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { JobEvent } from '../../control/events.js';
import type { JobQueue } from '../../control/job-queue.js';
import type { JobRecord } from '../../control/job-record.js';
import type { NiahEvaluation } from '../../core/reports.js';
import type { TelemetryHistory, WorkerEventRecord } from '../../control/telemetry-history.js';
import type { LiveFeed, LiveUpdate } from './live-feed.js';
import { SseStream } from './sse.js';
import {
  addStep,
  emptySeries,
  jobRow,
  rankPeaks,
  timelineEvents,
  type JobDetail,
  type JobPlan,
  type JobRow,
} from './views.js';

/** Steps a detail carries: the loss curve of a long run, without shipping its whole history. */
export const DETAIL_STEPS = 5_000;
/** A job's row goes out at most this often for step updates (state changes go out at once). */
export const ROW_INTERVAL_MS = 250;

export interface DashboardApiOptions {
  queue: JobQueue;
  history: TelemetryHistory;
  live: LiveFeed;
  getPlan: (jobId: string) => Promise<JobPlan | undefined>;
}

const eventKey = (e: JobEvent) => `${e.timeMs}/${e.state}/${e.attempt}/${e.message}`;
const workerKey = (e: WorkerEventRecord) => `${e.timeMs}/${e.kind}/${e.rank}/${e.attempt}/${e.step}`;

/** A full planner result carries every candidate it weighed; the dashboard needs the choice only. */
function withoutCandidates(plan: JobPlan & { candidates?: unknown }): JobPlan {
  const { candidates: _candidates, ...kept } = plan;
  return kept;
}

export class DashboardApi {
  constructor(private readonly options: DashboardApiOptions) {}

  private async rowOf(record: JobRecord): Promise<JobRow> {
    const { history } = this.options;
    const [progress, last] = await Promise.all([history.progress(record.id), history.steps(record.id, 1)]);
    return jobRow(record, progress, last[0]);
  }

  async rows(): Promise<JobRow[]> {
    const records = await this.options.queue.list();
    return Promise.all(records.map((r) => this.rowOf(r)));
  }

  async row(jobId: string): Promise<JobRow | undefined> {
    const record = await this.options.queue.get(jobId);
    return record ? this.rowOf(record) : undefined;
  }

  /** The job's NIAH evaluations, oldest step first; undefined for an unknown job. */
  async niah(jobId: string): Promise<NiahEvaluation[] | undefined> {
    const record = await this.options.queue.get(jobId);
    return record ? this.options.history.niahEvaluations(jobId) : undefined;
  }

  async detail(jobId: string): Promise<JobDetail | undefined> {
    return (await this.readDetail(jobId))?.detail;
  }

  /** The detail, and every worker event it was made from (the stream's duplicate filter needs them). */
  private async readDetail(
    jobId: string,
  ): Promise<{ detail: JobDetail; workerEvents: WorkerEventRecord[] } | undefined> {
    const { queue, history, getPlan } = this.options;
    const record = await queue.get(jobId);
    if (!record) return undefined;
    const [row, steps, events, workerEvents, plan] = await Promise.all([
      this.rowOf(record),
      history.steps(jobId, DETAIL_STEPS),
      queue.history(jobId),
      history.workerEvents(jobId),
      getPlan(jobId),
    ]);
    const series = emptySeries();
    for (const s of steps) addStep(series, s);
    const spec = record.spec;
    const detail: JobDetail = {
      job: row,
      spec: {
        model: spec.model.preset ?? spec.model.configPath ?? 'custom',
        seqLen: spec.seq_len,
        devices: spec.devices,
        gradAccumulation: spec.grad_accumulation,
        precision: spec.precision,
        checkpointEvery: spec.checkpoint.every,
        niahSteps: spec.eval?.niah?.steps ?? [],
        specYaml: record.specYaml,
      },
      plan: plan ? withoutCandidates(plan) : null,
      series,
      latest: steps.at(-1) ?? null,
      rankPeakBytes: rankPeaks(steps, record.devices),
      events,
      workerEvents: timelineEvents(workerEvents),
    };
    return { detail, workerEvents };
  }

  /** /api/stream: `jobs` (every row), then `job` (one row) whenever a job changes. */
  async streamJobs(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const stream = new SseStream(req, res);
    const timers = new Map<string, NodeJS.Timeout>();
    let snapshotSent = false;
    const dirty = new Set<string>();
    const sendRow = (jobId: string) => {
      this.row(jobId)
        .then((row) => row && stream.send('job', row))
        .catch(() => stream.close());
    };
    const changed = (jobId: string, now: boolean) => {
      if (!snapshotSent) return void dirty.add(jobId);
      if (now) {
        clearTimeout(timers.get(jobId));
        timers.delete(jobId);
        return sendRow(jobId);
      }
      if (timers.has(jobId)) return;
      timers.set(
        jobId,
        setTimeout(() => {
          timers.delete(jobId);
          sendRow(jobId);
        }, ROW_INTERVAL_MS),
      );
    };
    const stop = this.options.live.listen((u: LiveUpdate) => {
      if (u.kind === 'job') changed(u.event.jobId, true);
      else if (u.update.type === 'step') changed(u.update.jobId, false);
    });
    stream.onClose(() => {
      stop();
      for (const t of timers.values()) clearTimeout(t);
    });
    await this.options.live.ready;
    stream.send('jobs', await this.rows());
    snapshotSent = true;
    // Rows that changed while the snapshot was read are sent again, newest state.
    for (const jobId of dirty) changed(jobId, true);
  }

  /**
   * /api/jobs/<id>/stream: `snapshot` (the detail), then `step`, `worker` and `state` ({event, job})
   * as they happen. Answers false for an unknown job (the caller sends 404).
   */
  async streamJob(jobId: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const buffered: LiveUpdate[] = [];
    let stream: SseStream | undefined;
    let seen: { lastStep: number; events: Set<string>; workers: Set<string> } | undefined;
    const deliver = (u: LiveUpdate) => {
      if (!stream || !seen) return void buffered.push(u);
      if (u.kind === 'job') {
        if (seen.events.delete(eventKey(u.event))) return;
        const event = u.event;
        this.row(jobId)
          .then((row) => row && stream?.send('state', { event, job: row }))
          .catch(() => stream?.close());
        return;
      }
      const update = u.update;
      if (update.type === 'step') {
        if (update.step.step <= seen.lastStep) return;
        seen.lastStep = -1; // a later restart may replay lower steps: only the snapshot's are skipped
        stream.send('step', update.step);
      } else {
        if (seen.workers.delete(workerKey(update.event))) return;
        if (timelineEvents([update.event]).length > 0) stream.send('worker', update.event);
      }
    };
    const stop = this.options.live.listen((u) => {
      if (u.kind === 'job' ? u.event.jobId === jobId : u.update.jobId === jobId) deliver(u);
    });
    try {
      await this.options.live.ready;
      const read = await this.readDetail(jobId);
      if (!read) {
        stop();
        return false;
      }
      const { detail, workerEvents } = read;
      stream = new SseStream(req, res);
      stream.onClose(stop);
      stream.send('snapshot', detail);
      seen = {
        lastStep: detail.series.step.at(-1) ?? -1,
        events: new Set(detail.events.map(eventKey)),
        workers: new Set(workerEvents.map(workerKey)),
      };
      for (const u of buffered.splice(0)) deliver(u);
      return true;
    } catch (err) {
      stop();
      stream?.close();
      throw err;
    }
  }
}
