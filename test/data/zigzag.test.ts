import test from 'ava';

import '../../worker-native/token-file.js';
import { native } from '../../worker-native/native.js';
import { checkZigzag, zigzagPlan } from '../../core/zigzag.js';

test('the C++ zigzag map equals zigzag.ts for several (S, N)', (t) => {
  const cases: Array<[number, number]> = [
    [2, 1],
    [8, 1],
    [8, 2],
    [16, 4],
    [48, 3],
    [30, 5],
    [64, 8],
    [4096, 8],
    [229376, 8], // LongVA's 224K context on 8 GPUs
  ];
  for (const [seqLen, world] of cases) {
    t.deepEqual(native().zigzagPlan(seqLen, world), zigzagPlan(seqLen, world), `S=${seqLen} N=${world}`);
  }
  // N = 4 holds chunks (0,7) (1,6) (2,5) (3,4), as ARCHITECTURE.md says.
  t.deepEqual(
    native()
      .zigzagPlan(64, 4)
      .map((s) => s.chunks),
    [
      [0, 7],
      [1, 6],
      [2, 5],
      [3, 4],
    ],
  );
});

test('both maps reject S not divisible by 2N with the same message naming both numbers', (t) => {
  for (const [seqLen, world] of [
    [10, 4],
    [100, 3],
    [7, 1],
  ] as const) {
    const fromTs = t.throws(() => zigzagPlan(seqLen, world));
    const fromCpp = t.throws(() => native().zigzagPlan(seqLen, world));
    t.is(fromCpp?.message, fromTs?.message);
    t.true(fromCpp?.message.includes(`seq_len ${seqLen}`));
    t.true(fromCpp?.message.includes(`${world} ranks`));
    t.true(fromCpp instanceof RangeError);
  }
  // zigzag.ts's zigzagPlan(S, 0) is an empty plan; its check rejects N = 0 as the C++ map does.
  t.is(t.throws(() => native().zigzagPlan(8, 0))?.message, t.throws(() => checkZigzag(8, 0))?.message);
});
