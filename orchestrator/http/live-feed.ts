// One Redis subscription for the whole HTTP side: every job state change (the queue's events
// channel) and every telemetry update of every job (the per-job telemetry channels, by pattern).
// Server-sent-event streams and the /metrics histograms listen here, so the number of Redis
// connections does not grow with the number of open dashboards.
import type { Redis } from 'ioredis';

import { parseJobEvent, subscriberConnection, type JobEvent } from '../../control/events.js';
import type { Keys } from '../../control/keys.js';
import type { TelemetryHistory, TelemetryUpdate } from '../../control/telemetry-history.js';

export type LiveUpdate = { kind: 'job'; event: JobEvent } | { kind: 'telemetry'; update: TelemetryUpdate };

export type LiveListener = (update: LiveUpdate) => void;

export class LiveFeed {
  private readonly listeners = new Set<LiveListener>();
  private readonly subscriber: Redis;
  /** Resolves once both subscriptions are in place; updates published before that are missed. */
  readonly ready: Promise<void>;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    history: TelemetryHistory,
    private readonly log: (line: string) => void,
  ) {
    // A subscribed connection can do nothing else, hence a connection of its own.
    this.subscriber = subscriberConnection(redis);
    const telemetryPattern = history.channel('*');
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.keys.jobEventsChannel)
        this.parseAndEmit(() => ({ kind: 'job', event: parseJobEvent(message) }));
    });
    this.subscriber.on('pmessage', (_pattern: string, _channel: string, message: string) => {
      this.parseAndEmit(() => ({ kind: 'telemetry', update: JSON.parse(message) as TelemetryUpdate }));
    });
    this.ready = Promise.all([
      this.subscriber.subscribe(this.keys.jobEventsChannel),
      this.subscriber.psubscribe(telemetryPattern),
    ]).then(() => undefined);
    // A failed subscription is reported where it is awaited; this keeps it from being unhandled.
    this.ready.catch((err: unknown) => this.log(`live feed: ${String(err)}`));
  }

  private parseAndEmit(parse: () => LiveUpdate): void {
    let update: LiveUpdate;
    try {
      update = parse();
    } catch (err) {
      this.log(`live feed: unreadable message: ${(err as Error).message}`);
      return;
    }
    for (const listener of this.listeners) {
      try {
        listener(update);
      } catch (err) {
        this.log(`live feed listener: ${(err as Error).message}`);
      }
    }
  }

  /** Calls `listener` for every update until the returned function is called. */
  listen(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.listeners.clear();
    // Nothing to flush on a subscriber: close at once, and never reconnect (Redis may be gone).
    this.subscriber.disconnect();
  }
}
