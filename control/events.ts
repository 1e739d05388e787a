// Job events: every state change of a job, published by the Lua script that makes the change
// (scripts.ts, emit), in the same atomic step. Watchers (gRPC WatchJob, the dashboard) subscribe
// to the live channel and read the job's capped stream for what happened before they came.
import { Redis } from 'ioredis';

import type { JobState } from './job-record.js';
import type { Keys } from './keys.js';

export interface JobEvent {
  jobId: string;
  /** The state after the change (a cancel request keeps the state and says so in `message`). */
  state: JobState;
  attempt: number;
  /** The node of the current or last attempt ('a+b' when its gang spans nodes); '' before the first placement. */
  node: string;
  /** Devices held after the change (on the first node of a gang that spans nodes); empty when none. */
  devices: number[];
  message: string;
  timeMs: number;
}

interface RawEvent {
  jobId: string;
  state: JobState;
  attempt: number;
  node: string;
  devices: string;
  message: string;
  timeMs: number;
}

export function parseJobEvent(json: string): JobEvent {
  const raw = JSON.parse(json) as RawEvent;
  return {
    jobId: raw.jobId,
    state: raw.state,
    attempt: raw.attempt,
    node: raw.node,
    devices: raw.devices ? raw.devices.split(',').map(Number) : [],
    message: raw.message,
    timeMs: raw.timeMs,
  };
}

/** The job's recorded events, oldest first (the newest 1000 or so are kept). */
export async function jobEventHistory(redis: Redis, keys: Keys, jobId: string): Promise<JobEvent[]> {
  const entries = await redis.xrange(keys.jobEvents(jobId), '-', '+');
  return entries.map(([, fields]) => parseJobEvent(fields[1] ?? '{}'));
}

export interface EventSubscription {
  close(): Promise<void>;
}

/**
 * A connection of its own for subscribing (a subscribed connection can do nothing else). ioredis
 * reconnects it by itself and the connection it duplicates reports the outage, so its own errors
 * are absorbed here: without a listener every retry prints an unhandled error event.
 */
export function subscriberConnection(redis: Redis): Redis {
  const subscriber = redis.duplicate();
  subscriber.on('error', () => undefined);
  return subscriber;
}

/**
 * Calls `onEvent` for every job state change from now on (all jobs; filter by jobId). Uses its
 * own connection, since a subscribed Redis connection can do nothing else.
 */
export async function watchJobEvents(
  redis: Redis,
  keys: Keys,
  onEvent: (event: JobEvent) => void,
): Promise<EventSubscription> {
  const subscriber = subscriberConnection(redis);
  subscriber.on('message', (_channel: string, message: string) => onEvent(parseJobEvent(message)));
  await subscriber.subscribe(keys.jobEventsChannel);
  return {
    close: async () => {
      await subscriber.quit();
    },
  };
}
