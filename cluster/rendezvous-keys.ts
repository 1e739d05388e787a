// The rendezvous keys of an attempt ("<prefix>/<key>", written by gloo's Redis store while the
// ranks join) are only needed while they join. Once the attempt is over they are given a time to
// live, so a long-lived Redis does not collect every attempt's keys forever (they are kept a
// little while for whoever is debugging a failed rendezvous).
import type { Redis } from 'ioredis';

export const RENDEZVOUS_KEYS_TTL_MS = 10 * 60_000;

/** Gives every key under the attempt's prefix a time to live; returns how many there were. */
export async function expireRendezvousKeys(
  redis: Redis,
  prefix: string,
  ttlMs = RENDEZVOUS_KEYS_TTL_MS,
): Promise<number> {
  // Job ids and attempts are plain words, but escape glob characters all the same.
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}/*`;
  let cursor = '0';
  let count = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 200);
    cursor = next;
    if (keys.length > 0) {
      const batch = redis.multi();
      for (const key of keys) batch.pexpire(key, ttlMs);
      await batch.exec();
      count += keys.length;
    }
  } while (cursor !== '0');
  return count;
}
