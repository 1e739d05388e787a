// Which checkpoints to keep: the newest `keepLast`, plus every `keepEvery`-th one ever written
// (by checkpoint ordinal: step / checkpointEvery), so a long run keeps a sparse history without
// filling the disk. Temporary folders of crashed saves are always removed.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { isTemporaryFolder } from './commit.js';
import { listCheckpoints } from './validate.js';

export interface RetentionPolicy {
  keepLast: number;
  /** 0 keeps no extra history. */
  keepEvery: number;
  checkpointEvery: number;
}

export function stepsToDelete(steps: number[], policy: RetentionPolicy): number[] {
  if (policy.keepLast < 1) throw new Error(`checkpoint.keep must be at least 1, got ${policy.keepLast}`);
  const newestFirst = [...steps].sort((a, b) => b - a);
  const keep = new Set(newestFirst.slice(0, policy.keepLast));
  if (policy.keepEvery > 0 && policy.checkpointEvery > 0) {
    for (const s of steps) if ((s / policy.checkpointEvery) % policy.keepEvery === 0) keep.add(s);
  }
  return newestFirst.filter((s) => !keep.has(s));
}

/**
 * Applies the policy to a checkpoints folder; returns the folders it removed. Temporary folders
 * are removed too unless `keepTemporary` (a save of a later step may be in progress in one):
 * only a process that knows no save is running — a job's rank 0 before training starts — may
 * clear them.
 */
export async function applyRetention(
  checkpointsDir: string,
  policy: RetentionPolicy,
  options: { keepTemporary?: boolean } = {},
): Promise<string[]> {
  const removed: string[] = [];
  const listing = await listCheckpoints(checkpointsDir);
  const doomed = new Set(
    stepsToDelete(
      listing.map((c) => c.step),
      policy,
    ),
  );
  for (const c of listing) {
    if (doomed.has(c.step)) {
      await rm(c.dir, { recursive: true, force: true });
      removed.push(c.dir);
    }
  }
  for (const name of await readdir(checkpointsDir)) {
    const path = join(checkpointsDir, name);
    if (isTemporaryFolder(name) && !options.keepTemporary) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}
