// Per-job telemetry kept in Redis, so an orchestrator restart or a second dashboard sees the
// same history: the aggregated step records (capped), the job's latest progress, when each rank
// of the current attempt was last heard from, and what the workers said (checkpoints, errors).
// Live watchers get every new step and worker event on one pub/sub channel per job.
import type { Redis } from 'ioredis';

import type { Keys } from './keys.js';
import type { NiahEvaluation, StepSummary, WorkerEventRecord } from '../core/reports.js';

export type { WorkerEventRecord };

/** Steps kept per job: enough for a loss curve over a long run, bounded in memory. */
export const STEP_HISTORY_LIMIT = 20_000;
export const WORKER_EVENT_LIMIT = 2_000;

export interface JobProgress {
  step: number;
  loss: number;
  tokensPerSecond: number;
  mfu: number;
  /** When the last complete step arrived (the watchdog's "step progress"). */
  lastStepAtMs: number;
  attempt: number;
}

export type TelemetryUpdate =
  | { type: 'step'; jobId: string; step: StepSummary }
  | { type: 'event'; jobId: string; event: WorkerEventRecord };

export class TelemetryHistory {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  private stepsKey(jobId: string): string {
    return `${this.keys.job(jobId)}:steps`;
  }
  private progressKey(jobId: string): string {
    return `${this.keys.job(jobId)}:progress`;
  }
  private livenessKey(jobId: string, attempt: number): string {
    return `${this.keys.job(jobId)}:attempt:${attempt}:heard`;
  }
  private workerEventsKey(jobId: string): string {
    return `${this.keys.job(jobId)}:worker-events`;
  }
  private niahKey(jobId: string): string {
    return `${this.keys.job(jobId)}:niah`;
  }
  channel(jobId: string): string {
    return `${this.keys.prefix}:telemetry:${jobId}`;
  }

  async recordStep(jobId: string, attempt: number, step: StepSummary): Promise<void> {
    const json = JSON.stringify(step);
    await this.redis
      .multi()
      .rpush(this.stepsKey(jobId), json)
      .ltrim(this.stepsKey(jobId), -STEP_HISTORY_LIMIT, -1)
      .hset(this.progressKey(jobId), {
        step: step.step,
        loss: step.loss,
        tokensPerSecond: step.tokensPerSecond,
        mfu: step.mfu,
        lastStepAtMs: step.timeMs,
        attempt,
      })
      .publish(this.channel(jobId), JSON.stringify({ type: 'step', jobId, step } satisfies TelemetryUpdate))
      .exec();
  }

  async recordWorkerEvent(jobId: string, event: WorkerEventRecord): Promise<void> {
    await this.redis
      .multi()
      .rpush(this.workerEventsKey(jobId), JSON.stringify(event))
      .ltrim(this.workerEventsKey(jobId), -WORKER_EVENT_LIMIT, -1)
      .publish(this.channel(jobId), JSON.stringify({ type: 'event', jobId, event } satisfies TelemetryUpdate))
      .exec();
  }

  /** A checkpoint's NIAH evaluation (one per step: a later one of the same step replaces it). */
  async recordNiah(jobId: string, evaluation: NiahEvaluation): Promise<void> {
    await this.redis.hset(this.niahKey(jobId), String(evaluation.step), JSON.stringify(evaluation));
  }

  /** The job's NIAH evaluations, by step. */
  async niahEvaluations(jobId: string): Promise<NiahEvaluation[]> {
    const all = await this.redis.hvals(this.niahKey(jobId));
    return all.map((json) => JSON.parse(json) as NiahEvaluation).sort((a, b) => a.step - b.step);
  }

  /** A rank of the attempt was heard from (registration, heartbeat or report). */
  async heard(jobId: string, attempt: number, rank: number, timeMs: number): Promise<void> {
    const key = this.livenessKey(jobId, attempt);
    await this.redis
      .multi()
      .hset(key, String(rank), timeMs)
      .pexpire(key, 24 * 3600_000)
      .exec();
  }

  /** rank → last time heard, for the attempt. */
  async lastHeard(jobId: string, attempt: number): Promise<Map<number, number>> {
    const raw = await this.redis.hgetall(this.livenessKey(jobId, attempt));
    return new Map(Object.entries(raw).map(([rank, t]) => [Number(rank), Number(t)]));
  }

  async progress(jobId: string): Promise<JobProgress | undefined> {
    const raw = await this.redis.hgetall(this.progressKey(jobId));
    if (!raw.step) return undefined;
    return {
      step: Number(raw.step),
      loss: Number(raw.loss),
      tokensPerSecond: Number(raw.tokensPerSecond),
      mfu: Number(raw.mfu),
      lastStepAtMs: Number(raw.lastStepAtMs),
      attempt: Number(raw.attempt),
    };
  }

  /** The newest `count` step records, oldest first. */
  async steps(jobId: string, count = STEP_HISTORY_LIMIT): Promise<StepSummary[]> {
    const raw = await this.redis.lrange(this.stepsKey(jobId), -count, -1);
    return raw.map((s) => JSON.parse(s) as StepSummary);
  }

  async workerEvents(jobId: string): Promise<WorkerEventRecord[]> {
    const raw = await this.redis.lrange(this.workerEventsKey(jobId), 0, -1);
    return raw.map((s) => JSON.parse(s) as WorkerEventRecord);
  }
}
