// The gang scheduler. A job runs only when ALL the devices it needs are free at once; the scheduler
// looks at the waiting jobs in queue order (higher priority first, FIFO within a priority) and
// places each one that fits, using place-job, the one atomic step that reserves the devices and
// records the placement. A gang goes whole onto one node whenever some live node is big enough to
// hold it (it waits for that rather than split: ranks on one node talk through memory, not the
// network). Only a gang bigger than every node is split: across the fewest live nodes of one kind,
// in contiguous rank ranges (ranks 0..k-1 on the node with the most free devices, and so on), when
// the free devices of those nodes together hold it. The scheduler's state is all in Redis: any
// number of schedulers may run against one Redis (they race only through place-job, which cannot
// double-book), and one that restarts picks up exactly where the last left off.
//
// Anti-starvation policy (backfill with reservation). A job that does not fit does not block the
// queue: jobs behind it that fit on some node are placed (backfill), so small jobs keep devices
// busy. But a big job could then wait forever behind a stream of small ones. So once a job has
// waited `starvationMs` without fitting, the scheduler keeps one live node big enough for it (the
// one with the most free devices) for that job alone: no other job is placed on that node from
// then on, its running jobs drain, and the job is placed there as soon as its devices are free
// (the hold ends with the placement, a cancel, or the node's death). Jobs keep backfilling other
// nodes meanwhile. A node is kept for one job at a time; older (higher in the order) starving jobs
// take holds first.
//
// Each pass also ends the attempts of nodes whose agent is gone (lease expired, or a new agent
// took the node's name): those jobs go to recovery, so a node that dies gives its jobs back.
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import { DEFAULT_BACKOFF, finishAttempt, type BackoffPolicy } from './recovery.js';
import { subscriberConnection } from './events.js';
import { ACTIVE_STATES, type JobRecord } from './job-record.js';
import { entryId, handOff, nodeQueue, PendingQueue, type AttemptRef, type PendingEntry } from './pending.js';
import { ControlStore, freeDevices, type NodeStatus, type ShareRequest } from './store.js';
import { nodeHasAccelerators } from '../core/devices.js';

export interface SchedulerOptions {
  /** A connection for commands; the scheduler opens one more of its own to listen to events. */
  redis: Redis;
  prefix?: string;
  /** Passes run on every job or node event, and at least this often (backoffs, leases, holds). */
  pollMs?: number;
  /** How long a job may wait without fitting before a node is kept for it. */
  starvationMs?: number;
  /** Backoff for the jobs of dead nodes. */
  backoff?: BackoffPolicy;
  onError?: (err: unknown) => void;
  /** The time in ms (Date.now by default); tests move it to cross the starvation threshold. */
  clock?: () => number;
}

export interface PassReport {
  /** `node` and `devices`: rank 0's node and its devices there; `shares`: every node's part. */
  placed: {
    jobId: string;
    node: string;
    attempt: number;
    devices: number[];
    shares: { node: string; devices: number[]; firstRank: number }[];
  }[];
  /** Jobs for which a node is now kept (anti-starvation). */
  held: { jobId: string; node: string }[];
  /** Jobs whose attempt ended because their node's agent was lost. */
  lost: string[];
}

export const DEFAULT_STARVATION_MS = 10 * 60_000;

export class Scheduler {
  readonly store: ControlStore;
  private pendingQueue?: PendingQueue;
  private readonly nodeQueues = new Map<string, Queue<AttemptRef>>();
  private readonly pollMs: number;
  private readonly starvationMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly onError: (err: unknown) => void;
  private readonly clock: () => number;
  private subscriber?: Redis;
  private timer?: NodeJS.Timeout;
  private running?: Promise<PassReport>;
  private again = false;
  private stopped = true;

  constructor(private readonly options: SchedulerOptions) {
    this.store = new ControlStore(options.redis, options.prefix);
    this.pollMs = options.pollMs ?? 1000;
    this.starvationMs = options.starvationMs ?? DEFAULT_STARVATION_MS;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.onError = options.onError ?? ((err) => console.error('scheduler:', err));
    this.clock = options.clock ?? Date.now;
  }

  /** Starts passing: now, on every job or node event, and every pollMs. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    const subscriber = subscriberConnection(this.options.redis);
    this.subscriber = subscriber;
    subscriber.on('message', () => this.kick());
    await subscriber.subscribe(this.store.keys.jobEventsChannel, this.store.keys.nodeEventsChannel);
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
    await this.subscriber?.quit();
    this.subscriber = undefined;
    await Promise.all([...this.nodeQueues.values()].map((q) => q.close()));
    this.nodeQueues.clear();
    await this.pendingQueue?.close();
    this.pendingQueue = undefined; // a later start() opens a new one
  }

  private kick(): void {
    if (this.stopped) return;
    this.runPass().catch(this.onError);
  }

  /**
   * One scheduling pass. Passes of one scheduler never overlap: a pass asked for while one runs
   * is folded into a single follow-up pass.
   */
  async runPass(): Promise<PassReport> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        let report = await this.pass();
        while (this.again && !this.stopped) {
          this.again = false;
          const next = await this.pass();
          report = {
            placed: [...report.placed, ...next.placed],
            held: [...report.held, ...next.held],
            lost: [...report.lost, ...next.lost],
          };
        }
        return report;
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** The pending queue (opened on first use, so a stopped scheduler can start again). */
  get pending(): PendingQueue {
    this.pendingQueue ??= new PendingQueue(this.options.redis, this.store.keys.prefix);
    return this.pendingQueue;
  }

  private queueOf(node: string): Queue<AttemptRef> {
    let queue = this.nodeQueues.get(node);
    if (!queue) {
      queue = nodeQueue(this.options.redis, this.store.keys.prefix, node);
      this.nodeQueues.set(node, queue);
    }
    return queue;
  }

  private async pass(): Promise<PassReport> {
    const report: PassReport = { placed: [], held: [], lost: [] };
    const now = this.clock();
    let nodes = await this.store.nodes();

    // 1. Attempts with a node whose agent is gone go to recovery, the whole gang on every node
    // (end-attempt re-checks atomically).
    const byName = new Map(nodes.map((n) => [n.name, n]));
    for (const job of await this.store.getJobs(await this.store.activeJobIds())) {
      const share = job.shares.find((s) => {
        const node = byName.get(s.node);
        return !node?.alive || (s.agent !== undefined && node.agent !== s.agent);
      });
      if (!share) continue;
      const applied = await finishAttempt(
        this.store,
        this.pending,
        job,
        {
          kind: 'failed',
          cause: 'agent-lost',
          message: `the agent of node ${share.node} was lost during attempt ${job.attempt}`,
        },
        { ifLost: true, backoff: this.backoff, now, node: share.node },
      );
      if (applied) report.lost.push(job.id);
    }
    if (report.lost.length > 0) nodes = await this.store.nodes();

    // 2. The waiting jobs in queue order; entries that no longer match a waiting attempt retire.
    const waiting = new Map(
      (await this.store.getJobs(await this.store.waitingJobIds())).map((j) => [j.id, j]),
    );
    const ordered: JobRecord[] = [];
    const listed = new Set<string>();
    for (const entry of await this.pending.list()) {
      const job = waiting.get(entry.jobId);
      if (!job || entry.attempt !== job.attempt + 1 || listed.has(job.id)) {
        await this.retireEntry(entry);
        continue;
      }
      listed.add(job.id);
      ordered.push(job);
    }
    // A job recorded but never enqueued (its submitter died in between) is enqueued now; it takes
    // its place in the order from the next pass.
    for (const job of waiting.values()) {
      if (!listed.has(job.id)) {
        await this.pending.add(job);
        this.again = true;
      }
    }

    // 3. Holds end when their job stopped waiting or their node died.
    for (const node of nodes) {
      if (!node.hold) continue;
      const job = waiting.get(node.hold);
      if (!job || !node.alive || job.holdNode !== node.name) {
        await this.store.releaseHold(node.hold, node.name);
        node.hold = undefined;
      }
    }
    for (const job of waiting.values()) {
      if (job.holdNode && !nodes.some((n) => n.name === job.holdNode && n.hold === job.id)) {
        await this.store.releaseHold(job.id, job.holdNode);
        job.holdNode = undefined;
      }
    }

    // 4. Place what fits, in order; start keeping a node for jobs that waited too long.
    const free = new Map(nodes.map((n) => [n.name, freeDevices(n)]));
    const freeOn = (n: NodeStatus) => free.get(n.name) ?? 0;
    for (const job of ordered) {
      if (job.retryAt !== undefined && job.retryAt > now) continue;
      const eligible = nodes.filter((n) => n.alive && offers(n, job));
      const usable = eligible.filter((n) => !n.hold || n.hold === job.id);
      const where =
        wholeOnOneNode(job, usable, freeOn) ??
        acrossNodes(job, eligible, (n) => (n.hold && n.hold !== job.id ? 0 : freeOn(n)));
      if (where) {
        const token = randomBytes(24).toString('base64url');
        const result = await this.store.placeJob(job.id, where, job.attempt, token, now);
        if (!result.ok) {
          this.again = true; // someone else changed the picture; look again
          continue;
        }
        for (const share of result.shares) {
          await handOff(this.queueOf(share.node), { jobId: job.id, attempt: result.attempt });
          free.set(share.node, (free.get(share.node) ?? 0) - share.devices.length);
          const node = nodes.find((n) => n.name === share.node);
          if (node?.hold === job.id) node.hold = undefined;
        }
        await this.pending.remove(entryId({ jobId: job.id, attempt: result.attempt }));
        const first = result.shares[0]!;
        report.placed.push({
          jobId: job.id,
          node: first.node,
          attempt: result.attempt,
          devices: first.devices,
          shares: result.shares,
        });
        continue;
      }
      if (job.holdNode || now - job.queuedAt < this.starvationMs) continue;
      const candidates = nodes
        .filter((n) => n.alive && !n.hold && n.devices >= job.devices && offers(n, job))
        .sort((a, b) => freeOn(b) - freeOn(a) || a.name.localeCompare(b.name));
      const chosen = candidates[0];
      if (chosen && (await this.store.holdNode(job.id, chosen.name, now))) {
        chosen.hold = job.id;
        report.held.push({ jobId: job.id, node: chosen.name });
      }
    }
    return report;
  }

  /**
   * Removes a pending entry that no longer stands for a waiting attempt. If the job was placed as
   * that attempt, the node's hand-off is made first (idempotent): a scheduler that died between
   * place-job and the hand-off leaves exactly this behind.
   */
  private async retireEntry(entry: PendingEntry): Promise<void> {
    const job = await this.store.getJob(entry.jobId);
    if (job && ACTIVE_STATES.includes(job.state) && job.attempt === entry.attempt) {
      for (const share of job.shares) await handOff(this.queueOf(share.node), entry);
    }
    await this.pending.remove(entry.entryId);
  }
}

/**
 * The one node to place a job on: the node kept for it first, otherwise best fit (the fewest free
 * devices left over). Undefined when none has the free devices now.
 */
function wholeOnOneNode(
  job: JobRecord,
  usable: NodeStatus[],
  freeOn: (n: NodeStatus) => number,
): string | undefined {
  const fits = usable.filter((n) => freeOn(n) >= job.devices);
  fits.sort(
    (a, b) =>
      Number(b.hold === job.id) - Number(a.hold === job.id) ||
      freeOn(a) - freeOn(b) ||
      a.name.localeCompare(b.name),
  );
  return fits[0]?.name;
}

/**
 * A gang that no live node is big enough to hold, split across the fewest nodes of one kind whose
 * free devices hold it: the nodes with the most free devices first (by name among equals), each
 * giving all it has but the last. Undefined when some node could hold the gang whole (it waits for
 * that node), when the job names accelerators (a count per node), or when not enough is free.
 */
function acrossNodes(
  job: Pick<JobRecord, 'devices' | 'spec'>,
  usable: NodeStatus[],
  freeOn: (n: NodeStatus) => number,
): ShareRequest[] | undefined {
  if (job.spec.resources?.accelerators) return undefined;
  if (usable.some((n) => n.devices >= job.devices)) return undefined;
  let best: ShareRequest[] | undefined;
  for (const kind of new Set(usable.map((n) => n.kind))) {
    const candidates = usable
      .filter((n) => n.kind === kind && freeOn(n) > 0)
      .sort((a, b) => freeOn(b) - freeOn(a) || a.name.localeCompare(b.name));
    const shares: ShareRequest[] = [];
    let missing = job.devices;
    for (const node of candidates) {
      if (missing === 0) break;
      const count = Math.min(freeOn(node), missing);
      shares.push({ node: node.name, count });
      missing -= count;
    }
    if (missing === 0 && (!best || shares.length < best.length)) best = shares;
  }
  return best;
}

/** A job that names accelerators runs only on a node that has them; any other job on any node. */
function offers(node: NodeStatus, job: JobRecord): boolean {
  const wanted = job.spec.resources?.accelerators;
  return wanted === undefined || nodeHasAccelerators(node, wanted);
}
