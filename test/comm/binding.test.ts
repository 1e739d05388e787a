// The communicator binding within one process: argument checks, a one-rank communicator, closing,
// and the helpers of worker-native/comm.ts.
import test from 'ava';

import { rendezvousPrefix } from '../../core/rank-launch.js';
import { createCommunicator, MAX_TAG, ringPeers } from '../../worker-native/comm.js';
import { useRedis } from '../helpers/redis.js';

const redis = useRedis(test);

test('bad options are errors naming the option', (t) => {
  const port = redis().port;
  const base = { rank: 0, size: 2, redisPort: port, prefix: 'longctx/bad/1' };
  const cases: Array<[object, new (...args: never[]) => Error, RegExp]> = [
    [{ ...base, rank: 2 }, RangeError, /^options\.rank must be an integer in \[0, 1\], got 2$/],
    [{ ...base, rank: 0.5 }, RangeError, /^options\.rank must be an integer/],
    [{ ...base, size: 0 }, RangeError, /^options\.size must be an integer in \[1, /],
    [{ ...base, rank: 'one' }, TypeError, /^options\.rank must be a number$/],
    [{ ...base, prefix: '' }, TypeError, /^options\.prefix must be a non-empty string$/],
    [{ ...base, redisPort: 70000 }, RangeError, /^options\.redisPort must be an integer in \[1, 65535\]/],
    [{ ...base, timeoutMs: 0 }, RangeError, /^options\.timeoutMs must be an integer in \[1, /],
    [{ ...base, bindHost: 7 }, TypeError, /^options\.bindHost must be a non-empty string$/],
  ];
  for (const [options, type, message] of cases) {
    const error = t.throws(() => createCommunicator(options as never));
    t.true(error instanceof type, `${JSON.stringify(options)}: ${String(error)}`);
    t.regex(error?.message ?? '', message);
  }
  const missing = t.throws(() => createCommunicator(undefined as never));
  t.regex(missing?.message ?? '', /options/);
});

test('an unreachable Redis fails the rendezvous, saying where it looked', async (t) => {
  const error = await t.throwsAsync(
    createCommunicator({ rank: 0, size: 1, redisPort: 1, prefix: 'longctx/no-redis/1', timeoutMs: 1000 }),
  );
  t.is(
    error?.message,
    "rendezvous 'longctx/no-redis/1': cannot reach Redis at 127.0.0.1:1: Connecting to Redis: Connection refused",
  );
});

test('a one-rank communicator: collectives are the identity, there is no peer to talk to', async (t) => {
  const comm = await createCommunicator({
    rank: 0,
    size: 1,
    redisPort: redis().port,
    prefix: rendezvousPrefix('solo', 1),
    timeoutMs: 5000,
  });
  t.like(comm, { rank: 0, size: 1, prefix: 'longctx/solo/1', timeoutMs: 5000 });
  const f32 = new Float32Array([1.5, -2, 3.25]);
  const f64 = new Float64Array([0.1, 0.2]);
  await comm.barrier();
  await comm.allReduceSum(f32);
  await comm.allReduceSum(f64);
  await comm.allReduceSum(new Float32Array(0));
  t.deepEqual([...f32], [1.5, -2, 3.25]);
  t.deepEqual([...f64], [0.1, 0.2]);

  const self = t.throws(() => comm.isend(0, f32, 1));
  t.regex(self?.message ?? '', /^send: peer must be a rank in \[0, 1\) other than this rank \(0\), got 0$/);
  t.throws(() => comm.irecv(1, f32, 1), { instanceOf: RangeError, message: /argument 0 \(peer\)/ });
  t.throws(() => comm.irecv(0, f32, MAX_TAG + 1), { instanceOf: RangeError, message: /argument 2 \(tag\)/ });
  t.throws(() => comm.irecv(0, [1, 2] as never, 1), {
    instanceOf: TypeError,
    message: /argument 1 \(data\)/,
  });
  t.throws(() => comm.allReduceSum(new Int32Array(2) as never), {
    instanceOf: TypeError,
    message: 'argument 0 (data) must be a Float32Array or Float64Array',
  });
  // Invalid peers reject (not throw) from the promise-returning send.
  await t.throwsAsync(comm.send(0, f32, 1), { message: /^send: peer must be a rank/ });
  t.deepEqual(comm.stats(), { bytesSent: 0, bytesReceived: 0, waitSeconds: comm.stats().waitSeconds });
  t.true(comm.stats().waitSeconds >= 0);

  await comm.close();
  await comm.close(); // twice is fine
  const closed = "communicator (rank 0 of 1 in 'longctx/solo/1') is closed";
  await t.throwsAsync(comm.barrier(), { message: closed });
  await t.throwsAsync(comm.allReduceSum(f32), { message: closed });
  await t.throwsAsync(comm.recv(0, f32, 1), { message: closed });
  t.throws(() => comm.stats(), { message: closed });
});

test('rendezvous prefixes name job and attempt; ring peers wrap around', (t) => {
  t.is(rendezvousPrefix('job-7.a_b', 3), 'longctx/job-7.a_b/3');
  t.throws(() => rendezvousPrefix('a/b', 1), { instanceOf: TypeError, message: /job must be/ });
  t.throws(() => rendezvousPrefix('job', 0), { instanceOf: RangeError, message: /attempt must be/ });
  t.deepEqual(ringPeers(0, 4), { next: 1, prev: 3 });
  t.deepEqual(ringPeers(3, 4), { next: 0, prev: 2 });
  t.deepEqual(ringPeers(0, 1), { next: 0, prev: 0 });
});
