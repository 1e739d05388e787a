// Every test that needs Redis starts its own: a private redis-server on a free port in a
// temporary folder, stopped when the test file finishes.
import type { ExecutionContext, TestFn } from 'ava';

import { startEmbeddedRedis, type EmbeddedRedis } from '../../cluster/embedded-redis.js';

export interface UseRedisOptions {
  /** Runs before Redis stops: whatever still talks to Redis (a server, its agent and queues)
   * must stop first, or it keeps reconnecting and the test file fails to exit. */
  stopFirst?: () => Promise<void>;
}

/** Starts a Redis for the test file and registers its shutdown with ava. */
export function useRedis(test: TestFn, options: UseRedisOptions = {}): () => EmbeddedRedis {
  let redis: EmbeddedRedis | undefined;
  // Serial: ava runs before-hooks concurrently, and a serial one makes every hook registered
  // after it wait for it, so no other before-hook can reach for Redis while it is starting.
  test.serial.before(async () => {
    redis = await startEmbeddedRedis();
  });
  // After-hooks run concurrently too, so the ordering lives here rather than in hook order.
  test.after.always(async () => {
    try {
      await options.stopFirst?.();
    } finally {
      await redis?.stop();
    }
  });
  return () => {
    if (!redis)
      throw new Error('Redis was not started (useRedis must be called at the top of the test file)');
    return redis;
  };
}

export type { ExecutionContext };
