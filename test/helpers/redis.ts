// Every test that needs Redis starts its own: a private redis-server on a free port in a
// temporary folder, stopped when the test file finishes.
import type { ExecutionContext, TestFn } from 'ava';

import { startEmbeddedRedis, type EmbeddedRedis } from '../../cluster/embedded-redis.js';

/** Starts a Redis for the test file and registers its shutdown with ava. */
export function useRedis(test: TestFn): () => EmbeddedRedis {
  let redis: EmbeddedRedis | undefined;
  test.before(async () => {
    redis = await startEmbeddedRedis();
  });
  test.after.always(async () => {
    await redis?.stop();
  });
  return () => {
    if (!redis)
      throw new Error('Redis was not started (useRedis must be called at the top of the test file)');
    return redis;
  };
}

export type { ExecutionContext };
