// Typed access to the control plane's Redis state: job records, node inventories, leases and
// device tables. Reads are plain commands; every change goes through one script of scripts.ts,
// so this class adds types, not logic.
import type { Redis } from 'ioredis';

import type { DeviceKind, NodeInventory } from '../core/devices.js';
import { decodeJobRecord, type JobRecord, type JobShare, type JobState } from './job-record.js';
import { Keys } from './keys.js';
import * as scripts from './scripts.js';

/** A node as the scheduler sees it. */
export interface NodeStatus {
  name: string;
  hostname: string;
  kind: DeviceKind;
  /** Device count. */
  devices: number;
  deviceNames: string[];
  /** Byte budget of each device. */
  deviceMemoryBytes: number[];
  threadsPerDevice: number;
  sgemmGflops?: number;
  /** Host cores the node's devices share (NodeInventory.cores). */
  cores?: number;
  /** Whether an agent holds the node's lease now; the scheduler places only on live nodes. */
  alive: boolean;
  /** The id of the agent holding the lease. */
  agent?: string;
  /** Device index → id of the job holding it. */
  heldBy: Map<number, string>;
  /** The starving job the node is kept for, if any. */
  hold?: string;
  updatedAt: number;
}

/** How many devices to take on one node: one entry per node of a placement, in rank order. */
export interface ShareRequest {
  node: string;
  count: number;
}

export type PlaceResult =
  | {
      ok: true;
      attempt: number;
      /** The devices taken on each node, in rank order (one share when one node holds the gang). */
      shares: Pick<JobShare, 'node' | 'devices' | 'firstRank'>[];
    }
  | { ok: false; reason: string };
export type ClaimResult = 'ok' | 'cancelled' | 'lost' | 'stale';

export interface EndAttemptArgs {
  jobId: string;
  node: string;
  attempt: number;
  state: Exclude<JobState, 'QUEUED' | 'PLACED' | 'RUNNING'>;
  message: string;
  now: number;
  /** RECOVERING: not placed again before this time. */
  retryAt?: number;
  /** RECOVERING: whether this failure counts against max_restarts. */
  countRestart?: boolean;
  /** Apply only if the agent that took the attempt no longer holds the node's lease. */
  ifLost?: boolean;
}

/** Where a gang's ranks run on a node: what a new agent kills if the old one died. */
export interface GangRecord {
  jobId: string;
  attempt: number;
  agent: string;
  /** Process group ids (each rank leads its own group). */
  pgids: number[];
}

/** How long an attempt's resume choice is kept: far longer than its agents take to launch. */
const RESUME_CHOICE_TTL_MS = 24 * 3600_000;

export class ControlStore {
  readonly keys: Keys;

  constructor(
    readonly redis: Redis,
    prefix?: string,
  ) {
    this.keys = new Keys(prefix);
  }

  private run(script: scripts.Script, args: (string | number)[]): Promise<unknown> {
    return script.run(this.redis, [this.keys.prefix, ...args]);
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    return decodeJobRecord(await this.redis.hgetall(this.keys.job(id)));
  }

  async getJobs(ids: string[]): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.job(id));
    const results = (await pipeline.exec()) ?? [];
    const out: JobRecord[] = [];
    for (const [err, hash] of results) {
      if (err) throw err;
      const record = decodeJobRecord(hash as Record<string, string>);
      if (record) out.push(record);
    }
    return out;
  }

  /** Every job, oldest submission first. */
  async allJobIds(): Promise<string[]> {
    return this.redis.zrange(this.keys.jobs, 0, -1);
  }

  async waitingJobIds(): Promise<string[]> {
    return this.redis.smembers(this.keys.waiting);
  }

  async activeJobIds(): Promise<string[]> {
    return this.redis.smembers(this.keys.active);
  }

  async nextSequence(): Promise<number> {
    return this.redis.incr(this.keys.sequence);
  }

  async createJob(id: string, fields: Record<string, string>, now: number): Promise<void> {
    await this.run(scripts.createJob, [id, now, ...Object.entries(fields).flat()]);
  }

  /** Places a job on one node (all its devices) or across several (`ShareRequest` per node). */
  async placeJob(
    id: string,
    where: string | ShareRequest[],
    expectedAttempt: number,
    token: string,
    now: number,
  ): Promise<PlaceResult> {
    const requests =
      typeof where === 'string'
        ? [{ node: where, count: Number(await this.redis.hget(this.keys.job(id), 'devices')) }]
        : where;
    const [ok, a, b] = (await this.run(scripts.placeJob, [
      id,
      expectedAttempt,
      token,
      now,
      ...requests.flatMap((r) => [r.node, r.count]),
    ])) as [number, number | string, string?];
    if (ok !== 1) return { ok: false, reason: String(a) };
    let firstRank = 0;
    const shares = (b ?? '').split(' ').map((part) => {
      const [node = '', csv = ''] = part.split(':');
      const devices = csv.split(',').map(Number);
      const share = { node, devices, firstRank };
      firstRank += devices.length;
      return share;
    });
    return { ok: true, attempt: Number(a), shares };
  }

  async claimJob(
    id: string,
    node: string,
    attempt: number,
    agent: string,
    now: number,
  ): Promise<ClaimResult> {
    const [, why] = (await this.run(scripts.claimJob, [id, node, attempt, agent, now])) as [
      number,
      ClaimResult,
    ];
    return why;
  }

  /** Records that `node`'s share of the attempt started (the job is RUNNING once every share has). */
  async markRunning(
    id: string,
    node: string,
    attempt: number,
    agent: string,
    pids: number[],
    now: number,
  ): Promise<boolean> {
    return (await this.run(scripts.markRunning, [id, node, attempt, agent, pids.join(','), now])) === 1;
  }

  /**
   * Records that `node`'s share of a running attempt succeeded: 'all' when every share of the gang
   * now has (end the attempt), 'others-running', or 'stale' when the attempt is over.
   */
  async shareSucceeded(
    id: string,
    node: string,
    attempt: number,
  ): Promise<'all' | 'others-running' | 'stale'> {
    const result = (await this.run(scripts.shareSucceeded, [id, node, attempt])) as number;
    return result === 1 ? 'all' : result === 0 ? 'others-running' : 'stale';
  }

  /** Ends an attempt; returns the state applied, or undefined when the attempt was already over. */
  async endAttempt(args: EndAttemptArgs): Promise<JobState | undefined> {
    const applied = (await this.run(scripts.endAttempt, [
      args.jobId,
      args.node,
      args.attempt,
      args.state,
      args.message,
      args.now,
      args.retryAt ?? 0,
      args.countRestart === false ? 0 : 1,
      args.ifLost ? 1 : 0,
    ])) as string;
    return applied === '' ? undefined : (applied as JobState);
  }

  /**
   * The checkpoint an attempt resumes from, the same for every node of its gang: the first
   * proposal (a checkpoint, or null for none) is kept, and every caller gets that one back.
   */
  async agreeResume<T>(id: string, attempt: number, proposal: T | null): Promise<T | null> {
    const key = this.keys.jobResume(id, attempt);
    await this.redis.set(key, JSON.stringify(proposal), 'PX', RESUME_CHOICE_TTL_MS, 'NX');
    const agreed = await this.redis.get(key);
    return agreed === null ? proposal : (JSON.parse(agreed) as T | null);
  }

  async cancelJob(id: string, now: number): Promise<{ accepted: boolean; previous?: JobState }> {
    const [accepted, previous] = (await this.run(scripts.cancelJob, [id, now])) as [number, string];
    return { accepted: accepted === 1, previous: previous === '' ? undefined : (previous as JobState) };
  }

  async resumeJob(
    id: string,
    now: number,
    message: string,
  ): Promise<{ accepted: boolean; previous?: JobState }> {
    const [accepted, previous] = (await this.run(scripts.resumeJob, [id, now, message])) as [number, string];
    return { accepted: accepted === 1, previous: previous === '' ? undefined : (previous as JobState) };
  }

  async holdNode(id: string, node: string, now: number): Promise<boolean> {
    return (await this.run(scripts.holdNode, [id, node, now])) === 1;
  }

  async releaseHold(id: string, node: string): Promise<void> {
    await this.run(scripts.releaseHold, [id, node]);
  }

  /** Takes or renews the node's lease; returns the other agent's id when it holds the lease. */
  async registerNode(
    inventory: NodeInventory,
    agent: string,
    leaseMs: number,
    forgetMs: number,
    now: number,
  ): Promise<{ ok: true } | { ok: false; holder: string }> {
    const fields = {
      name: inventory.node,
      hostname: inventory.hostname,
      kind: inventory.kind,
      devices: String(inventory.devices.length),
      deviceNames: JSON.stringify(inventory.devices.map((d) => d.name)),
      deviceMemoryBytes: JSON.stringify(inventory.devices.map((d) => d.memoryBytes)),
      threadsPerDevice: String(inventory.threadsPerDevice),
      sgemmGflops: inventory.sgemmGflops === undefined ? '' : String(inventory.sgemmGflops),
      cores: inventory.cores === undefined ? '' : String(inventory.cores),
      updatedAt: String(now),
    };
    const [ok, holder] = (await this.run(scripts.registerNode, [
      inventory.node,
      agent,
      leaseMs,
      forgetMs,
      ...Object.entries(fields).flat(),
    ])) as [number, string?];
    return ok === 1 ? { ok: true } : { ok: false, holder: holder ?? '' };
  }

  async releaseLease(node: string, agent: string): Promise<void> {
    await this.run(scripts.releaseLease, [node, agent]);
  }

  /** Every node whose inventory is still remembered, live or not, by name. */
  async nodes(): Promise<NodeStatus[]> {
    const names = (await this.redis.smembers(this.keys.nodes)).sort();
    if (names.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const name of names) {
      pipeline.hgetall(this.keys.node(name));
      pipeline.get(this.keys.nodeAlive(name));
      pipeline.hgetall(this.keys.nodeDevices(name));
      pipeline.get(this.keys.nodeHold(name));
    }
    const results = (await pipeline.exec()) ?? [];
    const out: NodeStatus[] = [];
    names.forEach((name, i) => {
      const [info, alive, devices, hold] = results.slice(4 * i, 4 * i + 4).map(([err, value]) => {
        if (err) throw err;
        return value;
      }) as [Record<string, string>, string | null, Record<string, string>, string | null];
      if (!info.name) return; // forgotten: the inventory expired
      out.push({
        name,
        hostname: info.hostname ?? '',
        kind: (info.kind ?? 'cpu') as DeviceKind,
        devices: Number(info.devices ?? 0),
        deviceNames: JSON.parse(info.deviceNames ?? '[]') as string[],
        deviceMemoryBytes: JSON.parse(info.deviceMemoryBytes ?? '[]') as number[],
        threadsPerDevice: Number(info.threadsPerDevice ?? 1),
        sgemmGflops: info.sgemmGflops ? Number(info.sgemmGflops) : undefined,
        cores: info.cores ? Number(info.cores) : undefined,
        alive: alive !== null,
        agent: alive ?? undefined,
        heldBy: new Map(Object.entries(devices).map(([d, job]) => [Number(d), job])),
        hold: hold ?? undefined,
        updatedAt: Number(info.updatedAt ?? 0),
      });
    });
    return out;
  }

  async recordGang(node: string, gang: GangRecord): Promise<void> {
    await this.redis.hset(this.keys.nodeGangs(node), `${gang.jobId}/${gang.attempt}`, JSON.stringify(gang));
  }

  async forgetGang(node: string, jobId: string, attempt: number): Promise<void> {
    await this.redis.hdel(this.keys.nodeGangs(node), `${jobId}/${attempt}`);
  }

  async gangs(node: string): Promise<GangRecord[]> {
    const all = await this.redis.hgetall(this.keys.nodeGangs(node));
    return Object.values(all).map((json) => JSON.parse(json) as GangRecord);
  }
}

/** Free device count of a node: devices without a holder (devices past the count never count). */
export function freeDevices(node: NodeStatus): number {
  let held = 0;
  for (const d of node.heldBy.keys()) if (d < node.devices) held++;
  return node.devices - held;
}
