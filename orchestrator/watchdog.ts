// The watchdog: notices a running gang that hangs and has its node agent bring it down, after
// which recovery restarts the job from its newest valid checkpoint. A gang hangs when one of its
// ranks has gone silent (no heartbeat: killed, stopped with SIGSTOP, its host gone) or when no
// step has completed for much longer than the plan says a step takes (a deadlock in a collective,
// a rank spinning). The time limits scale with the planned step time, so a 7B step of a minute
// and a tiny step of 50 ms are both judged fairly.
import type { Redis } from 'ioredis';

import type { JobQueue } from '../control/job-queue.js';
import type { JobRecord } from '../control/job-record.js';
import type { TelemetryHistory } from '../control/telemetry-history.js';

export interface WatchdogOptions {
  queue: JobQueue;
  history: TelemetryHistory;
  redis: Redis;
  /** Planned seconds of one step of the job (from its plan), if known. */
  plannedStepSeconds(jobId: string): Promise<number | undefined>;
  intervalMs?: number;
  /** A rank not heard from for this long is gone (it heartbeats every second). */
  silenceMs?: number;
  /** No step for max(minStallMs, stallFactor × planned step seconds) is a hang. */
  minStallMs?: number;
  stallFactor?: number;
  /** Time a fresh attempt gets before its first step (rendezvous, building the model, resuming). */
  startupMs?: number;
  log?(message: string): void;
  clock?(): number;
}

export interface HangVerdict {
  jobId: string;
  attempt: number;
  node: string;
  reason: string;
}

export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private readonly reported = new Set<string>();

  constructor(private readonly o: WatchdogOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(
      () => void this.check().catch((err: unknown) => this.o.log?.(`watchdog: ${String(err)}`)),
      this.o.intervalMs ?? 500,
    );
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Judges one running job; undefined when it looks healthy. */
  async judge(job: JobRecord, now: number): Promise<HangVerdict | undefined> {
    const silence = this.o.silenceMs ?? 5_000;
    const planned = (await this.o.plannedStepSeconds(job.id)) ?? 0;
    const stall = Math.max(this.o.minStallMs ?? 30_000, (this.o.stallFactor ?? 10) * planned * 1000);
    const started = job.startedAt ?? job.placedAt ?? now;
    const heard = await this.o.history.lastHeard(job.id, job.attempt);
    const progress = await this.o.history.progress(job.id);
    const base = { jobId: job.id, attempt: job.attempt, node: job.node ?? '' };
    for (const [rank, at] of heard) {
      if (now - at > silence)
        return {
          ...base,
          reason: `rank ${rank} silent for ${((now - at) / 1000).toFixed(1)} s (no heartbeat)`,
        };
    }
    const startup = Math.max(this.o.startupMs ?? 60_000, stall);
    if (now - started > startup && heard.size < job.devices) {
      const missing = Array.from({ length: job.devices }, (_, r) => r).filter((r) => !heard.has(r));
      return {
        ...base,
        reason: `ranks ${missing.join(', ')} never reported within ${(startup / 1000).toFixed(0)} s`,
      };
    }
    const lastStep = progress && progress.attempt === job.attempt ? progress.lastStepAtMs : undefined;
    const since = lastStep ?? started;
    const limit = lastStep === undefined ? startup : stall;
    if (now - since > limit) {
      return {
        ...base,
        reason: `no step completed for ${((now - since) / 1000).toFixed(1)} s (limit ${(limit / 1000).toFixed(1)} s)`,
      };
    }
    return undefined;
  }

  /** One pass over the running jobs; returns the gangs it asked to stop. */
  async check(): Promise<HangVerdict[]> {
    const now = (this.o.clock ?? Date.now)();
    const stopped: HangVerdict[] = [];
    for (const job of await this.o.queue.list({ states: ['RUNNING'] })) {
      const verdict = await this.judge(job, now);
      if (!verdict) continue;
      const key = `${job.id}/${job.attempt}`;
      if (this.reported.has(key)) continue;
      this.reported.add(key);
      this.o.log?.(
        `watchdog: job ${job.id} attempt ${job.attempt} hangs: ${verdict.reason}; stopping its gang`,
      );
      // Every node of the gang stops its share (a gang may span nodes).
      const nodes = job.shares.length > 0 ? job.shares.map((share) => share.node) : [verdict.node];
      for (const node of nodes) {
        await this.o.redis.publish(
          this.o.queue.store.keys.nodeControl(node),
          JSON.stringify({ type: 'hung', ...verdict }),
        );
      }
      stopped.push(verdict);
    }
    return stopped;
  }
}
