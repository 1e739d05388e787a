// JobQueue.resume against a real Redis: a FAILED or CANCELLED job is queued again under its own
// id (next attempt, restart count from 0, back in the pending order), once; a job that succeeded
// or has not ended is refused, and an unknown one is named.
import test from 'ava';

import { JobQueue } from '../../control/job-queue.js';
import { connect, cpuInventory, deletePrefix, testPrefix } from '../helpers/control.js';
import { useRedis } from '../helpers/redis.js';
import { jobSpec } from './fixtures.js';

const redis = useRedis(test);

async function queueWithNode(
  t: { teardown(fn: () => Promise<void>): void },
  name: string,
): Promise<JobQueue> {
  const connection = connect(redis().url);
  const prefix = testPrefix(name);
  const queue = new JobQueue(connection, prefix);
  t.teardown(async () => {
    await queue.close();
    await deletePrefix(connection, prefix);
    connection.disconnect();
  });
  await queue.store.registerNode(cpuInventory('node-a', 8), 'agent-1', 60_000, 600_000, Date.now());
  return queue;
}

test('a failed job is queued again as its next attempt, with its restart count back at 0', async (t) => {
  const queue = await queueWithNode(t, 'resumefail');
  const submitted = await queue.submit(jobSpec('fails', 8, 10));
  const id = submitted.id;
  t.true((await queue.store.placeJob(id, 'node-a', 0, 'tok', Date.now())).ok);
  await queue.pending.remove(`${id}.1`);
  const ended = await queue.store.endAttempt({
    jobId: id,
    node: 'node-a',
    attempt: 1,
    state: 'FAILED',
    message: 'rank 3 exited with code 1; restarts exhausted',
    now: Date.now(),
  });
  t.is(ended, 'FAILED');
  await queue.store.redis.hset(queue.store.keys.job(id), 'restarts', '3');

  const resumed = await queue.resume(id);
  t.deepEqual(resumed, { resumed: true, previousState: 'FAILED', message: 'resumed on request' });
  const job = (await queue.get(id))!;
  t.like(job, { state: 'QUEUED', attempt: 1, restarts: 0, message: 'resumed on request', deviceIndices: [] });
  t.is(job.finishedAt, undefined);
  t.true((await queue.store.waitingJobIds()).includes(id));
  t.deepEqual(
    (await queue.pending.list()).map((e) => e.entryId),
    [`${id}.2`],
  );
  const history = await queue.history(id);
  t.deepEqual(
    history.map((e) => e.state),
    ['QUEUED', 'PLACED', 'FAILED', 'QUEUED'],
  );

  const twice = await queue.resume(id);
  t.false(twice.resumed);
  t.is(twice.message, `cannot resume ${id}: it is QUEUED, not ended`);
});

test('a job cancelled while queued can be resumed; a succeeded or unknown job cannot', async (t) => {
  const queue = await queueWithNode(t, 'resumecancel');
  const submitted = await queue.submit(jobSpec('dropped', 8, 10));
  const id = submitted.id;
  await queue.cancel(id);
  t.deepEqual(await queue.pending.list(), []);
  t.true((await queue.resume(id)).resumed);
  t.deepEqual(
    (await queue.pending.list()).map((e) => e.entryId),
    [`${id}.1`],
  );

  t.true((await queue.store.placeJob(id, 'node-a', 0, 'tok', Date.now())).ok);
  await queue.store.endAttempt({
    jobId: id,
    node: 'node-a',
    attempt: 1,
    state: 'SUCCEEDED',
    message: 'all ranks finished',
    now: Date.now(),
  });
  const done = await queue.resume(id);
  t.deepEqual(done, {
    resumed: false,
    previousState: 'SUCCEEDED',
    message: `cannot resume ${id}: it already finished all its steps`,
  });
  t.deepEqual(await queue.resume('nobody-1-0000'), { resumed: false, message: "no job 'nobody-1-0000'" });
});
