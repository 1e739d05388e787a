// Failures no restart can fix: the worker's classification of its errors, the exit codes that
// carry it to the agent, and the recovery decision that ends such a job FAILED at once.
import test from 'ava';

import {
  PERMANENT_EXIT_CODES,
  permanentFailureOfExit,
  type PermanentFailure,
} from '../../core/rank-launch.js';
import { decideAfterFailure } from '../../control/recovery.js';
import { asPermanent, exitCodeFor, markPermanent, permanentKind } from '../../worker-native/host/failure.js';

const policy = { baseMs: 1000, maxMs: 5000 };

test('bad data, a bad config and an unpredicted OOM end the job at once, with the reason', (t) => {
  for (const [cause, reason] of [
    ['bad-data', 'bad data'],
    ['bad-config', 'a bad config'],
    ['out-of-memory', 'an out-of-memory the plan did not predict'],
  ] as const) {
    t.deepEqual(
      decideAfterFailure({ restarts: 0, maxRestarts: 3 }, { cause, message: 'rank 2 said why' }, policy, 0),
      {
        state: 'FAILED',
        message: `rank 2 said why; not restarted: ${reason} fails every attempt the same way`,
      },
    );
  }
  // Crashes, kills and hangs are still retried.
  for (const cause of ['rank-failed', 'watchdog', 'agent-lost', 'launch-failed'] as const)
    t.is(
      decideAfterFailure({ restarts: 0, maxRestarts: 3 }, { cause, message: 'x' }, policy, 0).state,
      'RECOVERING',
    );
});

test('exit codes carry the kind from the rank to the agent; others are retryable', (t) => {
  for (const [kind, code] of Object.entries(PERMANENT_EXIT_CODES))
    t.is(permanentFailureOfExit(code), kind as PermanentFailure);
  t.deepEqual(Object.values(PERMANENT_EXIT_CODES), [65, 78, 79]);
  for (const code of [0, 1, 2, 134, 137, null, undefined]) t.is(permanentFailureOfExit(code), undefined);
});

test('the worker marks errors by where they come from; an OOM is an OOM wherever it happens', async (t) => {
  const plain = new Error('connection reset by peer');
  t.is(permanentKind(plain), undefined);
  t.is(exitCodeFor(plain), 1);
  t.is(exitCodeFor('not even an Error'), 1);

  const data = await t.throwsAsync(
    asPermanent('bad-data', () => {
      throw new Error('token file x.bin: token 7 is id 900, not below the vocab size 259');
    }),
  );
  t.is(data?.message, 'token file x.bin: token 7 is id 900, not below the vocab size 259', 'message kept');
  t.is(permanentKind(data), 'bad-data');
  t.is(exitCodeFor(data), 65);

  const oom = Object.assign(new Error('arena device 0: out of memory'), {
    code: 'ERR_LONGCTX_OUT_OF_MEMORY',
  });
  const caught = await t.throwsAsync(asPermanent('bad-config', () => Promise.reject(oom)));
  t.is(permanentKind(caught), 'out-of-memory', 'an OOM while building the trainer is not a bad config');
  t.is(exitCodeFor(oom), 79, 'an OOM during a step, unmarked, is one too');

  t.is(exitCodeFor(markPermanent(new Error('seq_len'), 'bad-config')), 78);
  t.is(await asPermanent('bad-data', () => 42), 42, 'a result passes through');
});
