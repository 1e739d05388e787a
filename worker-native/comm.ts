// The communicator of a worker process: how its rank talks to the other ranks of the job (gloo over
// TCP, rendezvous on Redis). Types of the native binding (src/addon/comm_binding.cc) and the few
// helpers every caller needs.
import { native } from './native.js';

export interface CommOptions {
  rank: number;
  size: number;
  /** Redis that holds the rendezvous keys; 127.0.0.1 by default. */
  redisHost?: string;
  redisPort: number;
  /** One attempt of one job, from rendezvousPrefix() (core/rank-launch.ts); every rendezvous key lives under it. */
  prefix: string;
  /** Address this rank listens on for its peers; 127.0.0.1 by default (all ranks on one node). */
  bindHost?: string;
  /** Bounds the rendezvous and every operation; 30 000 by default. */
  timeoutMs?: number;
}

export interface CommStats {
  /** Point-to-point payload bytes of completed sends (collectives are not counted). */
  bytesSent: number;
  bytesReceived: number;
  /** Seconds callers spent waiting: barrier, allReduceSum, send, recv, and a transfer's wait(). */
  waitSeconds: number;
}

/** A posted send or recv. Its buffer must stay untouched until wait() resolved. */
export interface Transfer {
  readonly kind: 'send' | 'recv';
  readonly peer: number;
  readonly tag: number;
  readonly bytes: number;
  /** Resolves when the transfer completed; the same promise on every call. */
  wait(): Promise<void>;
}

/**
 * One rank's connections to the others. Collectives must be issued in the same order on every rank.
 * A send matches the recv of the same tag AND byte count. Operations reject within timeoutMs when a
 * peer died or never comes, naming it; after the first failure every operation rejects with it.
 */
export interface Communicator {
  readonly rank: number;
  readonly size: number;
  readonly prefix: string;
  readonly timeoutMs: number;
  barrier(): Promise<void>;
  /** Sums in place across ranks; every rank ends with bitwise identical values. */
  allReduceSum(data: Float32Array | Float64Array): Promise<void>;
  send(peer: number, data: ArrayBufferView, tag: number): Promise<void>;
  recv(peer: number, data: ArrayBufferView, tag: number): Promise<void>;
  /** Posts a send and returns at once; no thread is busy until wait() is called. */
  isend(peer: number, data: ArrayBufferView, tag: number): Transfer;
  irecv(peer: number, data: ArrayBufferView, tag: number): Transfer;
  stats(): CommStats;
  /** Null while usable; otherwise the first failure, which every later operation repeats. */
  failure(): string | null;
  /** Releases this handle; connections close once operations in flight have settled. */
  close(): Promise<void>;
}

export interface CommApi {
  /** Rendezvous with the other ranks (off the event loop) and connect to all of them. */
  createCommunicator(options: CommOptions): Promise<Communicator>;
}

declare module './native.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface NativeAddon extends CommApi {}
}

/** Largest tag of a point-to-point transfer (the tag shares gloo's 64-bit slot with the byte count). */
export const MAX_TAG = 0xffff;

/** The ranks a ring passes blocks between: this rank sends to `next` and receives from `prev`. */
export function ringPeers(rank: number, size: number): { next: number; prev: number } {
  return { next: (rank + 1) % size, prev: (rank - 1 + size) % size };
}

export function createCommunicator(options: CommOptions): Promise<Communicator> {
  return native().createCommunicator(options);
}
