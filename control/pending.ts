// The pending queue: jobs waiting for a gang of devices, held in BullMQ so the order survives
// any restart. BullMQ keeps prioritized jobs in a sorted set scored priority·2³² + an insertion
// counter, so reading it in order gives "higher spec priority first, FIFO within a priority".
// The scheduler reads the whole order instead of consuming it with a Worker: a gang scheduler
// must look past a head job that does not fit (backfill), which a Worker cannot do.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import type { JobRecord } from './job-record.js';
import { PENDING_QUEUE, nodeQueueName } from './keys.js';

/** What a pending entry and a node hand-off carry: the job, and the attempt it is (or will be). */
export interface AttemptRef {
  jobId: string;
  attempt: number;
}

export interface PendingEntry extends AttemptRef {
  /** The BullMQ job id: `<job>.<attempt>`. */
  entryId: string;
}

/**
 * BullMQ priority (1 runs first) for a spec priority (0-100, 100 runs first). Within one spec
 * priority a recovering job goes before fresh ones: it already waited its turn once.
 */
export function bullPriority(specPriority: number, recovering: boolean): number {
  return (100 - specPriority) * 2 + (recovering ? 1 : 2);
}

export function entryId(ref: AttemptRef): string {
  return `${ref.jobId}.${ref.attempt}`;
}

export class PendingQueue {
  readonly queue: Queue<AttemptRef>;

  constructor(connection: Redis, prefix: string) {
    this.queue = quiet(new Queue<AttemptRef>(PENDING_QUEUE, { connection, prefix }));
  }

  /** Enqueues the job's next attempt; adding an entry that exists already changes nothing. */
  async add(record: JobRecord): Promise<void> {
    const ref = { jobId: record.id, attempt: record.attempt + 1 };
    await this.queue.add('job', ref, {
      jobId: entryId(ref),
      priority: bullPriority(record.priority, record.state === 'RECOVERING'),
    });
  }

  /** Every pending entry in the order the scheduler should consider them. */
  async list(): Promise<PendingEntry[]> {
    const jobs = await this.queue.getPrioritized();
    return jobs
      .filter((job) => job?.id !== undefined)
      .map((job) => ({ jobId: job.data.jobId, attempt: job.data.attempt, entryId: job.id! }));
  }

  async remove(id: string): Promise<void> {
    await this.queue.remove(id);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** The queue a node's agent consumes; the scheduler adds `<job>.<attempt>` there after placing. */
export function nodeQueue(connection: Redis, prefix: string, node: string): Queue<AttemptRef> {
  return quiet(new Queue<AttemptRef>(nodeQueueName(node), { connection, prefix }));
}

/**
 * A queue re-emits its connection's errors; the connection (connectRedis) reports an outage once
 * and reconnects by itself, and a queue without a listener would print every retry.
 */
function quiet(queue: Queue<AttemptRef>): Queue<AttemptRef> {
  queue.on('error', () => undefined);
  return queue;
}

/** Finished runs a node queue keeps (completed and failed, each), so BullMQ tools show a history. */
export const NODE_QUEUE_HISTORY = 1000;

export async function handOff(queue: Queue<AttemptRef>, ref: AttemptRef): Promise<void> {
  await queue.add('run', ref, {
    jobId: entryId(ref),
    removeOnComplete: { count: NODE_QUEUE_HISTORY },
    removeOnFail: { count: NODE_QUEUE_HISTORY },
  });
}
