// A small seeded random number generator for the data pipeline. Packing and synthesis must give
// byte-identical output for the same seed on every machine and Node version, so nothing here
// touches Math.random; each use draws from its own stream, so adding a draw in one place (say,
// the shuffle) never changes the numbers another (the upsampling) sees.

/** Murmur3's 32-bit finalizer: a bijective mix with good avalanche. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Streams of randomness the pipeline draws from; one per independent use. */
export const RandomStream = {
  upsample: 1,
  shuffle: 2,
  synth: 3,
  /** Keys of needle-in-a-haystack evaluation cases (eval/). */
  niah: 4,
} as const;

/**
 * A counter-based generator (SplitMix32-style: a Weyl sequence through a strong mix). Period
 * 2^32 per (seed, stream), plenty for shuffling millions of documents.
 */
export class Rng {
  private state: number;

  /** `seed` is any non-negative safe integer; both its halves matter. */
  constructor(seed: number, stream: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
    }
    const low = seed >>> 0;
    const high = Math.floor(seed / 2 ** 32) >>> 0;
    this.state = mix32(low ^ mix32(high ^ mix32(stream + 0x632be5ab)));
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    return mix32(this.state ^ 0x5bd1e995);
  }

  /** A uniform float in [0, 1) with 32 bits of resolution. */
  float(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** A uniform integer in [0, n), exactly (rejection removes the modulo bias). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32)
      throw new RangeError(`int(n) needs 1 <= n <= 2^32, got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** A uniform integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Fisher–Yates: a uniform permutation of `items`, in place. */
  shuffle<T extends { [i: number]: unknown; length: number }>(items: T): T {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
}
