// Zigzag sharding for context parallelism (ARCHITECTURE.md): a sequence of S tokens on N ranks is
// cut into 2N equal chunks; rank r holds chunks r and 2N-1-r, so every rank has the same amount of
// causal-attention work. The native worker computes the same map (src/ring/zigzag.h); a test
// checks that the two agree.

export interface ZigzagShard {
  rank: number;
  /** The two chunk indices, in the order the rank stores them. */
  chunks: [number, number];
  /** Global position of each chunk's first token. */
  starts: [number, number];
  chunkTokens: number;
}

/** Throws an Error naming the problem when the sequence cannot be split evenly. */
export function checkZigzag(seqLen: number, worldSize: number): void {
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new Error(`world size must be a positive integer, got ${worldSize}`);
  }
  if (!Number.isInteger(seqLen) || seqLen < 1) {
    throw new Error(`seq_len must be a positive integer, got ${seqLen}`);
  }
  if (seqLen % (2 * worldSize) !== 0) {
    throw new Error(
      `seq_len ${seqLen} is not divisible by 2 × ${worldSize} ranks = ${2 * worldSize} (zigzag needs ${2 * worldSize} equal chunks)`,
    );
  }
}

export function zigzagShard(seqLen: number, worldSize: number, rank: number): ZigzagShard {
  checkZigzag(seqLen, worldSize);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new Error(`rank ${rank} is outside 0..${worldSize - 1}`);
  }
  const chunkTokens = seqLen / (2 * worldSize);
  const chunks: [number, number] = [rank, 2 * worldSize - 1 - rank];
  return { rank, chunks, starts: [chunks[0] * chunkTokens, chunks[1] * chunkTokens], chunkTokens };
}

export function zigzagPlan(seqLen: number, worldSize: number): ZigzagShard[] {
  checkZigzag(seqLen, worldSize);
  return Array.from({ length: worldSize }, (_, r) => zigzagShard(seqLen, worldSize, r));
}

/** The global positions of a rank's tokens, in its local order (first chunk, then second). */
export function zigzagPositions(seqLen: number, worldSize: number, rank: number): Int32Array {
  const shard = zigzagShard(seqLen, worldSize, rank);
  const out = new Int32Array(2 * shard.chunkTokens);
  shard.starts.forEach((start, c) => {
    for (let i = 0; i < shard.chunkTokens; i++) out[c * shard.chunkTokens + i] = start + i;
  });
  return out;
}
