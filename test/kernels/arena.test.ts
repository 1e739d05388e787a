// The device arena: exact byte counting (64-byte rounding), peak tracking, and a clear
// out-of-memory error instead of an overcommit.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import type { OutOfMemoryError } from '../../worker-native/kernels.js';
import '../../worker-native/kernels.js';

const { Arena } = native();
const MiB = 1024 * 1024;

test('current and peak count exactly the bytes allocated, rounded up to 64', (t) => {
  const arena = new Arena('device cpu:0', 10 * MiB);
  t.deepEqual(arena.stats(), { current: 0, peak: 0, budget: 10 * MiB, liveBlocks: 0 });
  const a = arena.allocate(4096);
  const b = arena.allocate(100); // counted as 128
  t.deepEqual(arena.stats(), { current: 4096 + 128, peak: 4096 + 128, budget: 10 * MiB, liveBlocks: 2 });
  arena.free(a);
  t.deepEqual(arena.stats(), { current: 128, peak: 4096 + 128, budget: 10 * MiB, liveBlocks: 1 });
  const c = arena.allocate(1); // counted as 64
  t.is(arena.stats().current, 192);
  t.is(arena.stats().peak, 4224);
  arena.resetPeak();
  t.is(arena.stats().peak, 192);
  const d = arena.allocate(MiB);
  t.is(arena.stats().peak, 192 + MiB);
  for (const id of [b, c, d]) arena.free(id);
  t.deepEqual(arena.stats(), { current: 0, peak: 192 + MiB, budget: 10 * MiB, liveBlocks: 0 });
});

test('a zero-byte allocation counts nothing', (t) => {
  const arena = new Arena('host', MiB);
  const id = arena.allocate(0);
  t.is(arena.stats().current, 0);
  arena.free(id);
});

test('an allocation past the budget throws a clear error and changes nothing', (t) => {
  const arena = new Arena('device cpu:3', 64 * MiB);
  arena.allocate(60 * MiB);
  const error = t.throws<OutOfMemoryError>(() => arena.allocate(4 * MiB + 1));
  t.regex(
    error.message,
    /^device cpu:3 out of memory: requested 4\.0 MiB with 60\.0 MiB of 64\.0 MiB in use/,
  );
  t.is(error.code, 'ERR_LONGCTX_OUT_OF_MEMORY');
  t.is(error.requested, 4 * MiB + 64);
  t.is(error.inUse, 60 * MiB);
  t.is(error.budget, 64 * MiB);
  t.is(arena.stats().current, 60 * MiB);
  t.is(arena.stats().liveBlocks, 1);
  // Exactly the rest of the budget still fits.
  arena.allocate(4 * MiB);
  t.is(arena.stats().current, 64 * MiB);
  t.throws(() => arena.allocate(1), {
    message: /out of memory: requested 1 B with 64\.0 MiB of 64\.0 MiB in use/,
  });
});

test('the host arena is counted apart from a device arena', (t) => {
  const device = new Arena('device cpu:1', MiB);
  const host = new Arena('host', 8 * MiB);
  host.allocate(4 * MiB);
  t.is(device.stats().current, 0);
  t.is(host.stats().current, 4 * MiB);
  t.throws(() => device.allocate(2 * MiB), { message: /^device cpu:1 out of memory/ });
});

test('bad arguments are TypeErrors naming the argument; unknown blocks are errors', (t) => {
  t.throws(() => new Arena('device cpu:0', -1), { instanceOf: TypeError, message: /budgetBytes/ });
  t.throws(() => new Arena('', 1), { instanceOf: TypeError, message: /label/ });
  const arena = new Arena('device cpu:0', MiB);
  t.throws(() => arena.allocate(1.5), { instanceOf: TypeError, message: /bytes/ });
  t.throws(() => arena.free(42), { message: /no live block with id 42 in device cpu:0/ });
});
