// Every Redis key and channel the control plane uses, in one place, so the Lua scripts, the
// scheduler and the node agents agree on names. All keys share one prefix (default `longctx`);
// the Lua scripts build node keys from the same prefix, so the control plane expects one Redis
// server (not a Redis Cluster), as BullMQ does without hash tags.

export const DEFAULT_PREFIX = 'longctx';

/** The BullMQ queue that holds jobs waiting for a gang of devices, ordered by priority. */
export const PENDING_QUEUE = 'pending';

/** The BullMQ queue a node agent consumes: jobs placed on that node. */
export function nodeQueueName(node: string): string {
  return `node-${node}`;
}

export class Keys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) {
      throw new Error(`redis prefix: must be letters, digits, '_', '.' or '-', got '${prefix}'`);
    }
  }

  /** Hash: the job record (see job-record.ts). */
  job(id: string): string {
    return `${this.prefix}:job:${id}`;
  }
  /** Stream: the job's state changes, capped, for watchers that arrive late. */
  jobEvents(id: string): string {
    return `${this.prefix}:job:${id}:events`;
  }
  /** String: the checkpoint every rank of a gang spanning nodes resumes from in one attempt. */
  jobResume(id: string, attempt: number): string {
    return `${this.prefix}:job:${id}:resume:${attempt}`;
  }
  /** Sorted set: every job id, scored by submission time. */
  get jobs(): string {
    return `${this.prefix}:jobs`;
  }
  /** Set: ids of jobs waiting for devices (QUEUED or RECOVERING). */
  get waiting(): string {
    return `${this.prefix}:jobs:waiting`;
  }
  /** Set: ids of jobs holding devices (PLACED or RUNNING). */
  get active(): string {
    return `${this.prefix}:jobs:active`;
  }
  /** Counter: submission sequence, for FIFO tie-breaks and unique ids. */
  get sequence(): string {
    return `${this.prefix}:jobs:seq`;
  }
  /** Set: names of every node that has registered. */
  get nodes(): string {
    return `${this.prefix}:nodes`;
  }
  /** Hash: a node's inventory (device count, kind, budget, sgemm rate). */
  node(name: string): string {
    return `${this.prefix}:node:${name}`;
  }
  /** String with a TTL: present while the node's agent heartbeats; holds the agent's id. */
  nodeAlive(name: string): string {
    return `${this.prefix}:node:${name}:alive`;
  }
  /** Hash: device index → id of the job that holds it. A device absent here is free. */
  nodeDevices(name: string): string {
    return `${this.prefix}:node:${name}:devices`;
  }
  /** String: the id of a starving job the node is being kept for (anti-starvation). */
  nodeHold(name: string): string {
    return `${this.prefix}:node:${name}:hold`;
  }
  /** Hash: '<job>/<attempt>' → the process groups its ranks run in on that node, for reaping orphans. */
  nodeGangs(name: string): string {
    return `${this.prefix}:node:${name}:gangs`;
  }
  /** Pub/sub channel: commands to a node's agent (cancel). */
  nodeControl(name: string): string {
    return `${this.prefix}:node:${name}:control`;
  }
  /** Pub/sub channel: every job state change, as JSON (see events.ts). */
  get jobEventsChannel(): string {
    return `${this.prefix}:events:jobs`;
  }
  /** Pub/sub channel: a node came up (first registration after being absent). */
  get nodeEventsChannel(): string {
    return `${this.prefix}:events:nodes`;
  }
}
