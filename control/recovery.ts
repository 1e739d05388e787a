// Recovery policy: what happens to a job when an attempt ends. A failed attempt (a rank died, the
// watchdog stopped a hung gang, the node agent was lost) becomes RECOVERING: the job waits out an
// exponential backoff and is placed again as attempt+1, whose ranks resume from the newest valid
// checkpoint. Once max_restarts failures have been counted, the next failure is final (FAILED).
// A deliberate agent shutdown (an operator draining a node) is not the job's fault and does not
// count against max_restarts. A failure no restart can fix (bad data, a bad config, an
// out-of-memory the plan did not predict: a rank's exit code says so) ends the job FAILED at once.
import type { PermanentFailure } from '../core/rank-launch.js';
import type { JobRecord, JobState } from './job-record.js';
import type { PendingQueue } from './pending.js';
import type { ControlStore } from './store.js';

export type FailureCause =
  'rank-failed' | 'launch-failed' | 'watchdog' | 'agent-lost' | 'agent-stopped' | PermanentFailure;

const PERMANENT_REASONS: Record<PermanentFailure, string> = {
  'bad-data': 'bad data',
  'bad-config': 'a bad config',
  'out-of-memory': 'an out-of-memory the plan did not predict',
};

export type AttemptOutcome =
  | { kind: 'succeeded' }
  | { kind: 'cancelled'; message: string }
  | { kind: 'failed'; cause: FailureCause; message: string };

export interface BackoffPolicy {
  /** Wait before the first restart; doubles with each counted restart. */
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 5_000, maxMs: 5 * 60_000 };

export type RecoveryDecision =
  | { state: 'RECOVERING'; retryAt: number; backoffMs: number; countRestart: boolean; message: string }
  | { state: 'FAILED'; message: string };

/** Restart or give up, from the failures counted so far. Pure: the tests check it directly. */
export function decideAfterFailure(
  job: Pick<JobRecord, 'restarts' | 'maxRestarts'>,
  failure: { cause: FailureCause; message: string },
  policy: BackoffPolicy,
  now: number,
): RecoveryDecision {
  if (failure.cause in PERMANENT_REASONS) {
    const reason = PERMANENT_REASONS[failure.cause as PermanentFailure];
    return {
      state: 'FAILED',
      message: `${failure.message}; not restarted: ${reason} fails every attempt the same way`,
    };
  }
  const countRestart = failure.cause !== 'agent-stopped';
  if (countRestart && job.restarts >= job.maxRestarts) {
    return {
      state: 'FAILED',
      message: `${failure.message}; no restarts left (max_restarts ${job.maxRestarts})`,
    };
  }
  const backoffMs = Math.min(policy.maxMs, policy.baseMs * 2 ** job.restarts);
  const which = countRestart ? `restart ${job.restarts + 1} of ${job.maxRestarts}` : 'restart (not counted)';
  return {
    state: 'RECOVERING',
    retryAt: now + backoffMs,
    backoffMs,
    countRestart,
    message: `${failure.message}; ${which} from the newest valid checkpoint after ${backoffMs} ms`,
  };
}

/**
 * Records the end of `job`'s current attempt (as read before it ended) on every node of its gang,
 * as reported by the agent of `options.node` (or for it), and, for a recovering job, puts its next
 * attempt in the pending queue. Safe to call twice or from two places: the end-attempt script
 * applies once per attempt. Returns the state applied, or undefined when the
 * attempt had already ended (or, with ifLost, its agent turned out to be alive).
 */
export async function finishAttempt(
  store: ControlStore,
  pending: PendingQueue,
  job: JobRecord,
  outcome: AttemptOutcome,
  options: { backoff?: BackoffPolicy; ifLost?: boolean; now?: number; node?: string } = {},
): Promise<JobState | undefined> {
  const now = options.now ?? Date.now();
  // The node reporting: one of the gang's nodes (rank 0's unless said); the attempt ends on all.
  const node = options.node ?? job.node;
  if (!node) throw new Error(`job ${job.id}: attempt ${job.attempt} has no node to end on`);
  const base = { jobId: job.id, node, attempt: job.attempt, now, ifLost: options.ifLost };
  let applied: JobState | undefined;
  if (outcome.kind === 'succeeded') {
    applied = await store.endAttempt({ ...base, state: 'SUCCEEDED', message: 'all ranks finished' });
  } else if (outcome.kind === 'cancelled') {
    applied = await store.endAttempt({ ...base, state: 'CANCELLED', message: outcome.message });
  } else {
    const decision = decideAfterFailure(job, outcome, options.backoff ?? DEFAULT_BACKOFF, now);
    applied = await store.endAttempt(
      decision.state === 'RECOVERING'
        ? {
            ...base,
            state: 'RECOVERING',
            message: decision.message,
            retryAt: decision.retryAt,
            countRestart: decision.countRestart,
          }
        : { ...base, state: 'FAILED', message: decision.message },
    );
  }
  if (applied === 'RECOVERING') {
    const updated = await store.getJob(job.id);
    if (updated?.state === 'RECOVERING') await pending.add(updated);
  }
  return applied;
}
