// The job record: one Redis hash per job holding everything the control plane knows about it,
// so an orchestrator that restarts reads back exactly where every job stands. This file defines
// the typed view of that hash and its conversions; only the Lua scripts (scripts.ts) change it.
import type { JobSpec } from '../core/job-spec.js';
import { longctx } from '../proto/gen/longctx.js';

/** The proto's JobState without its prefix; Redis stores these names. */
export const JOB_STATES = [
  'QUEUED',
  'PLACED',
  'RUNNING',
  'RECOVERING',
  'SUCCEEDED',
  'FAILED',
  'CANCELLED',
] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: readonly JobState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
/** States in which a job waits for devices (it is in the pending queue). */
export const WAITING_STATES: readonly JobState[] = ['QUEUED', 'RECOVERING'];
/** States in which a job holds devices on a node. */
export const ACTIVE_STATES: readonly JobState[] = ['PLACED', 'RUNNING'];

/**
 * One node's part of a placed gang. A gang that fits on one node has one share; one that no single
 * node can hold is split into contiguous rank ranges, one per node (ranks firstRank …
 * firstRank + devices.length - 1 on `node`), and each node's agent runs its own share.
 */
export interface JobShare {
  node: string;
  /** Device indices on `node`, one per rank of the share, in rank order. */
  devices: number[];
  firstRank: number;
  /** The agent that took this share of the current attempt. */
  agent?: string;
  /** Pids of the share's ranks once they started, in rank order. */
  pids: number[];
}

export interface JobRecord {
  id: string;
  name: string;
  /** The spec as the user wrote it, and where it came from. */
  specYaml: string;
  specPath?: string;
  /** The validated, defaulted spec (stored as JSON). */
  spec: JobSpec;
  priority: number;
  /** Devices the gang needs (its world size): on one node when one can hold them. */
  devices: number;
  maxRestarts: number;
  state: JobState;
  /** The attempt placed last: 0 before the first placement, then 1, 2, … */
  attempt: number;
  /** Failures counted against max_restarts. */
  restarts: number;
  /** The node of the current (or last) attempt; of its rank 0 when the gang spans nodes. */
  node?: string;
  /** Device indices held on `node` while PLACED or RUNNING; empty otherwise. */
  deviceIndices: number[];
  /** Where the current (or last) attempt's ranks run, one share per node, in rank order. */
  shares: JobShare[];
  /** The telemetry secret of the current attempt; revoked (empty) when the attempt ends. */
  token?: string;
  /** The id of the node agent that took the current attempt (of `node`'s share). */
  agent?: string;
  /**
   * Pids of the current attempt's ranks, in rank order (each leads its own process group); set
   * once every share's ranks have started.
   */
  pids: number[];
  cancelRequested: boolean;
  /** The node being kept for this job by the anti-starvation policy. */
  holdNode?: string;
  /** Submission order, for FIFO among equal priorities. */
  seq: number;
  submittedAt: number;
  /** When the job last started waiting (submission, or the end of a failed attempt's backoff). */
  queuedAt: number;
  /** A recovering job is not placed before this time (its backoff). */
  retryAt?: number;
  placedAt?: number;
  startedAt?: number;
  finishedAt?: number;
  updatedAt: number;
  /** The last state change or error, in words. */
  message: string;
}

function optionalNumber(value: string | undefined): number | undefined {
  return value === undefined || value === '' ? undefined : Number(value);
}

function optionalString(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function numberList(value: string | undefined): number[] {
  return value ? value.split(',').map(Number) : [];
}

/**
 * The shares of a record: the `shares` field ("node-a:0,1 node-b:0,1", rank order) with each
 * share's agent and pids from `agent@<node>` and `pids@<node>`; a record written before shares
 * existed has one share, on `node`.
 */
function decodeShares(hash: Record<string, string>): JobShare[] {
  if (!hash.shares) {
    if (!hash.node) return [];
    return [
      {
        node: hash.node,
        devices: numberList(hash.deviceIndices),
        firstRank: 0,
        agent: optionalString(hash.agent),
        pids: numberList(hash.pids),
      },
    ];
  }
  const shares: JobShare[] = [];
  let firstRank = 0;
  for (const part of hash.shares.split(' ')) {
    const [node = '', devices] = part.split(':');
    const share: JobShare = {
      node,
      devices: numberList(devices),
      firstRank,
      agent: optionalString(hash[`agent@${node}`]),
      pids: numberList(hash[`pids@${node}`]),
    };
    firstRank += share.devices.length;
    shares.push(share);
  }
  return shares;
}

/** The typed record from HGETALL's answer; undefined when the hash is empty (no such job). */
export function decodeJobRecord(hash: Record<string, string>): JobRecord | undefined {
  if (!hash.id) return undefined;
  const state = hash.state as JobState;
  if (!JOB_STATES.includes(state)) throw new Error(`job ${hash.id}: unknown state '${hash.state}' in Redis`);
  return {
    id: hash.id,
    name: hash.name ?? '',
    specYaml: hash.specYaml ?? '',
    specPath: optionalString(hash.specPath),
    spec: JSON.parse(hash.specJson ?? 'null') as JobSpec,
    priority: Number(hash.priority ?? 0),
    devices: Number(hash.devices ?? 0),
    maxRestarts: Number(hash.maxRestarts ?? 0),
    state,
    attempt: Number(hash.attempt ?? 0),
    restarts: Number(hash.restarts ?? 0),
    node: optionalString(hash.node),
    deviceIndices: numberList(hash.deviceIndices),
    shares: decodeShares(hash),
    token: optionalString(hash.token),
    agent: optionalString(hash.agent),
    pids: numberList(hash.pids),
    cancelRequested: hash.cancelRequested === '1',
    holdNode: optionalString(hash.holdNode),
    seq: Number(hash.seq ?? 0),
    submittedAt: Number(hash.submittedAt ?? 0),
    queuedAt: Number(hash.queuedAt ?? 0),
    retryAt: optionalNumber(hash.retryAt),
    placedAt: optionalNumber(hash.placedAt),
    startedAt: optionalNumber(hash.startedAt),
    finishedAt: optionalNumber(hash.finishedAt),
    updatedAt: Number(hash.updatedAt ?? 0),
    message: hash.message ?? '',
  };
}

/** The hash fields of a new job (create-job writes them). */
export function newJobFields(input: {
  id: string;
  seq: number;
  spec: JobSpec;
  specYaml: string;
  specPath?: string;
  now: number;
}): Record<string, string> {
  const { id, seq, spec, specYaml, specPath, now } = input;
  return {
    id,
    name: spec.name,
    specYaml,
    specPath: specPath ?? '',
    specJson: JSON.stringify(spec),
    priority: String(spec.priority),
    devices: String(spec.devices),
    maxRestarts: String(spec.max_restarts),
    state: 'QUEUED',
    attempt: '0',
    restarts: '0',
    seq: String(seq),
    submittedAt: String(now),
    queuedAt: String(now),
    updatedAt: String(now),
    message: 'queued',
  };
}

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.includes(state);
}

export function toProtoJobState(state: JobState): longctx.JobState {
  return longctx.JobState[`JOB_STATE_${state}`];
}

export function fromProtoJobState(state: longctx.JobState): JobState | undefined {
  const name = longctx.JobState[state] as string | undefined;
  const short = name?.replace(/^JOB_STATE_/, '') as JobState | undefined;
  return short && JOB_STATES.includes(short) ? short : undefined;
}

/** Where a job runs, in words: its node, or its nodes joined by '+' when its gang spans several. */
export function placementName(record: Pick<JobRecord, 'node' | 'shares'>): string {
  return record.shares.length > 1 ? record.shares.map((s) => s.node).join('+') : (record.node ?? '');
}

/** The queue's part of a JobSummary; step, loss and throughput come from telemetry. */
export function toJobSummary(record: JobRecord): longctx.IJobSummary {
  return {
    id: record.id,
    name: record.name,
    state: toProtoJobState(record.state),
    priority: record.priority,
    devices: record.devices,
    node: placementName(record),
    totalSteps: record.spec.steps,
    restarts: record.restarts,
    attempt: record.attempt,
    submittedAtMs: record.submittedAt,
    updatedAtMs: record.updatedAt,
    message: record.message,
    dataPath: record.spec.data.path,
  };
}
