// The job queue as the orchestrator's server and CLI use it: submit a validated spec, cancel,
// read jobs and nodes, watch state changes. Placement is the scheduler's (scheduler.ts) and
// running is the node agents' (cluster/agent.ts); all three meet only in Redis.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Redis } from 'ioredis';

import type { JobSpec } from '../core/job-spec.js';
import { jobEventHistory, watchJobEvents, type EventSubscription, type JobEvent } from './events.js';
import { ACTIVE_STATES, newJobFields, WAITING_STATES, type JobRecord, type JobState } from './job-record.js';
import { entryId, PendingQueue } from './pending.js';
import { ControlStore, type NodeStatus } from './store.js';

export interface CancelResult {
  /** True when the job is now cancelled (it was waiting) or its agent was told to stop it. */
  cancelled: boolean;
  /** The state the job was in; undefined for an unknown job. */
  previousState?: JobState;
  message: string;
}

export interface ResumeResult {
  /** True when the job is QUEUED again. */
  resumed: boolean;
  /** The state it was in; undefined for an unknown job. */
  previousState?: JobState;
  message: string;
}

export interface SubmitInput {
  /** A spec that passed admission (orchestrator/plan/admission.ts): rejected specs are never queued. */
  spec: JobSpec;
  /** The YAML it came from, kept with the job. */
  specYaml: string;
  specPath?: string;
}

/** A Redis connection suitable for BullMQ workers and queues (no per-command retry limit). */
export function connectRedis(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  // ioredis reconnects by itself; say so once per outage instead of an unhandled error per retry.
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) process.stderr.write(`redis ${url}: ${err.message} (reconnecting)\n`);
    down = true;
  });
  redis.on('ready', () => (down = false));
  return redis;
}

export class JobQueue {
  readonly store: ControlStore;
  readonly pending: PendingQueue;

  constructor(
    readonly redis: Redis,
    prefix?: string,
  ) {
    this.store = new ControlStore(redis, prefix);
    this.pending = new PendingQueue(redis, this.store.keys.prefix);
  }

  /**
   * Records and enqueues an admitted job. Admission (orchestrator/plan/admission.ts: the spec, its
   * data, a node that can hold it, a plan that fits) happens before, once; nothing is checked here.
   */
  async submit(input: SubmitInput): Promise<JobRecord> {
    const { spec } = input;
    const seq = await this.store.nextSequence();
    const id = `${spec.name}-${seq}-${randomBytes(2).toString('hex')}`;
    const now = Date.now();
    await this.store.createJob(
      id,
      newJobFields({ id, seq, spec, specYaml: input.specYaml, specPath: input.specPath, now }),
      now,
    );
    const job = await this.store.getJob(id);
    if (!job) throw new Error(`job ${id} vanished right after it was recorded`);
    await this.pending.add(job);
    return job;
  }

  /**
   * Cancels a job. A waiting job is cancelled at once and never placed; a placed or running job's
   * agent is told, stops the gang and frees the devices (the job then becomes CANCELLED).
   */
  async cancel(jobId: string): Promise<CancelResult> {
    const { accepted, previous } = await this.store.cancelJob(jobId, Date.now());
    if (previous === undefined) return { cancelled: false, message: `no job '${jobId}'` };
    if (!accepted)
      return { cancelled: false, previousState: previous, message: `job ${jobId} already ${previous}` };
    if (WAITING_STATES.includes(previous)) {
      const job = await this.store.getJob(jobId);
      if (job) await this.pending.remove(entryId({ jobId, attempt: job.attempt + 1 }));
      return { cancelled: true, previousState: previous, message: `cancelled while ${previous}` };
    }
    const job = await this.store.getJob(jobId);
    return {
      cancelled: true,
      previousState: previous,
      message: `cancel requested: the agent of node ${job?.node ?? '?'} stops the gang and frees its devices`,
    };
  }

  /**
   * Queues a FAILED or CANCELLED job again under its own id: its next attempt runs in the same run
   * folder, so the agent resumes it from its newest valid checkpoint (or from the start if there is
   * none). A job that succeeded, or has not ended, is refused.
   */
  async resume(jobId: string, message = 'resumed on request'): Promise<ResumeResult> {
    const { accepted, previous } = await this.store.resumeJob(jobId, Date.now(), message);
    if (previous === undefined) return { resumed: false, message: `no job '${jobId}'` };
    if (!accepted) {
      const why =
        previous === 'SUCCEEDED' ? 'it already finished all its steps' : `it is ${previous}, not ended`;
      return { resumed: false, previousState: previous, message: `cannot resume ${jobId}: ${why}` };
    }
    const job = await this.store.getJob(jobId);
    if (job) await this.pending.add(job);
    return { resumed: true, previousState: previous, message };
  }

  async get(jobId: string): Promise<JobRecord | undefined> {
    return this.store.getJob(jobId);
  }

  /** Jobs in submission order, optionally only those in the given states. */
  async list(filter: { states?: JobState[] } = {}): Promise<JobRecord[]> {
    const jobs = await this.store.getJobs(await this.store.allJobIds());
    const states = filter.states;
    return states && states.length > 0 ? jobs.filter((j) => states.includes(j.state)) : jobs;
  }

  /**
   * Whether `token` is the telemetry secret of the job's current attempt while it holds devices
   * (what the Telemetry service checks a rank's Registration against). A secret of an earlier
   * attempt, or of an attempt that ended, is refused.
   */
  async checkTelemetryToken(jobId: string, attempt: number, token: string): Promise<boolean> {
    const job = await this.store.getJob(jobId);
    if (!job?.token || job.attempt !== attempt || !ACTIVE_STATES.includes(job.state)) return false;
    const expected = Buffer.from(job.token);
    const given = Buffer.from(token);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  async nodes(): Promise<NodeStatus[]> {
    return this.store.nodes();
  }

  /** The job's recorded state changes, oldest first. */
  async history(jobId: string): Promise<JobEvent[]> {
    return jobEventHistory(this.redis, this.store.keys, jobId);
  }

  /** Every job state change from now on (all jobs). */
  async watch(onEvent: (event: JobEvent) => void): Promise<EventSubscription> {
    return watchJobEvents(this.redis, this.store.keys, onEvent);
  }

  /** Closes the BullMQ queue; the Redis connection is the caller's. */
  async close(): Promise<void> {
    await this.pending.close();
  }
}
