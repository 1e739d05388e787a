import test from 'ava';

import { native } from '../../worker-native/native.js';

test('buildInfo reports OpenBLAS and whether CUDA was compiled in', (t) => {
  const info = native().buildInfo();
  t.regex(info.blas, /OpenBLAS/);
  t.is(typeof info.cuda, 'boolean');
  t.is(info.cudaDeviceNames.length, info.cudaDevices);
});

test('a long operation runs off the event loop and streams progress', async (t) => {
  const addon = native();
  addon.setBlasThreads(1);
  const progress: number[] = [];
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const rate = await addon.measureSgemm(384, 40, (p) => progress.push(p.iteration));
  clearInterval(timer);
  t.true(rate.gflops > 0);
  t.is(rate.iterations, 40);
  // The event loop kept turning while the native work ran.
  t.true(ticks > 0, `event loop blocked: ${ticks} timer ticks during ${rate.seconds}s of native work`);
  // Progress arrives in order; the last report may still be in flight when the promise resolves.
  t.true(progress.length >= 1);
  t.deepEqual(
    progress,
    [...progress].sort((a, b) => a - b),
  );
});

test('a C++ exception surfaces as a JavaScript Error with its message', async (t) => {
  const error = await t.throwsAsync(native().measureSgemm(-3, 1));
  t.is(error?.message, 'sgemm size must be positive, got -3');
  t.true(error instanceof Error);
});

test('a wrong argument type is a TypeError naming the argument', (t) => {
  const error = t.throws(() => native().setBlasThreads('two' as unknown as number));
  t.true(error instanceof TypeError);
  t.regex(error?.message ?? '', /threads/);
});
