// Ring attention (context parallelism) as JavaScript sees it: the shard each rank holds and the
// binding that runs one forward and backward over a rank's tokens (src/ring/ring_attention.h).
import type { Communicator } from './comm.js';
import { zigzagPositions } from '../core/zigzag.js';

/** zigzag: rank r holds chunks r and 2N-1-r (balanced); contiguous: chunks 2r and 2r+1 (for comparison). */
export type Sharding = 'zigzag' | 'contiguous';

export interface RingOptions {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Defaults to 1/sqrt(headDim). */
  scale?: number;
  sharding?: Sharding;
  /** The device budget the ring's scratch buffers count against. */
  budgetBytes?: number;
}

/** What one rank spent in one pass. */
export interface RingPassStats {
  /** Wall time inside the attention kernels and merges. */
  computeSeconds: number;
  /** CPU time of the same: what the work cost, whatever else shared the cores. */
  computeCpuSeconds: number;
  waitSeconds: number;
  bytesSent: number;
  bytesReceived: number;
  /** Of bytesReceived, the blocks that had fully arrived when the rank came to use them. */
  bytesReceivedReady: number;
}

export interface RingResult {
  o: Float32Array;
  lse: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  forward: RingPassStats;
  backward: RingPassStats;
  peakBytes: number;
}

export interface RingApi {
  /**
   * One forward and backward of causal attention over the whole sequence, of which this rank holds
   * `tokens` (q, dout: [tokens, heads, headDim]; k, v: [tokens, kvHeads, headDim], in local order).
   * `communicator` null means one rank.
   */
  ringAttention(
    communicator: Communicator | null,
    options: RingOptions,
    tokens: number,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    dout: Float32Array,
  ): Promise<RingResult>;
}

declare module './native.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface NativeAddon extends RingApi {}
}

/** The global positions of a rank's tokens, in its local order, under either sharding. */
export function shardPositions(seqLen: number, world: number, rank: number, sharding: Sharding): Int32Array {
  if (sharding === 'zigzag') return zigzagPositions(seqLen, world, rank);
  const local = zigzagPositions(seqLen, world, rank).length; // validates seqLen and rank the same way
  return Int32Array.from({ length: local }, (_, i) => rank * local + i);
}
