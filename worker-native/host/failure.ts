// Which worker errors no restart can fix. A token id past the vocabulary, a config the trainer
// refuses, or an allocation past the device budget that the planner did not predict fail the
// same way on every attempt: the worker exits with the code for its kind (PERMANENT_EXIT_CODES)
// so the agent ends the job at once with the reason, instead of restarting it max_restarts times.
import { PERMANENT_EXIT_CODES, type PermanentFailure } from '../../core/rank-launch.js';

const KIND = Symbol('longctx.permanentFailure');

/** Marks an error as one of a kind no restart fixes (keeps the error and its message). */
export function markPermanent<E>(err: E, kind: PermanentFailure): E {
  if (err instanceof Error) Object.assign(err, { [KIND]: kind });
  return err;
}

/** Runs `work`; an error it throws is marked as `kind` (an out-of-memory keeps its own kind). */
export async function asPermanent<T>(kind: PermanentFailure, work: () => Promise<T> | T): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw markPermanent(err, isOutOfMemory(err) ? 'out-of-memory' : kind);
  }
}

function isOutOfMemory(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ERR_LONGCTX_OUT_OF_MEMORY';
}

/** The permanent kind of an error, or undefined for one a restart may fix. */
export function permanentKind(err: unknown): PermanentFailure | undefined {
  if (isOutOfMemory(err)) return 'out-of-memory';
  const kind = (err as Record<symbol, unknown> | null)?.[KIND];
  return typeof kind === 'string' ? (kind as PermanentFailure) : undefined;
}

/** The exit code for an error: its permanent kind's, else 1 (retried). */
export function exitCodeFor(err: unknown): number {
  const kind = permanentKind(err);
  return kind ? PERMANENT_EXIT_CODES[kind] : 1;
}
