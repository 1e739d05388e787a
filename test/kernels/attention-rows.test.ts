// The row kernels between the attention GEMMs (kernels/cpu/attention_rows.h): the polynomial exp
// against Math.exp, and the AVX2 / AVX-512 paths against the scalar reference, bit for bit — the
// flash kernels' results must not depend on which instruction set the machine has.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import type { AttentionRowIsa } from '../../worker-native/attention.js';

const addon = native();

/** Deterministic uniform numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Distance between got and the exact value in units of the float32 spacing at the exact value. */
function ulps(got: number, exact: number): number {
  const spacing = Math.max(2 ** -149, 2 ** (Math.floor(Math.log2(Math.abs(exact))) - 23));
  return Math.abs(got - exact) / spacing;
}

const exp = (isa: AttentionRowIsa, values: number[]): Float32Array => {
  const x = Float32Array.from(values);
  addon.attentionRowExpShiftSum(isa, x, 0);
  return x;
};

test('the polynomial exp is within 1 ulp of exp over the whole normal range', (t) => {
  const rand = random(1);
  const xs = Float32Array.from({ length: 200_000 }, (_, i) =>
    i % 2 === 0 ? -87.3 + (175.6 * i) / 200_000 : -20 * rand(),
  );
  const got = exp('scalar', [...xs]);
  let worst = 0;
  let worstAt = 0;
  for (let i = 0; i < xs.length; i++) {
    const error = ulps(got[i]!, Math.exp(xs[i]!));
    if (error > worst) [worst, worstAt] = [error, xs[i]!];
  }
  t.log(`max error ${worst.toFixed(3)} ulp at x=${worstAt}`);
  t.true(worst <= 1, `exp error ${worst} ulp at x=${worstAt}`);
});

test('the polynomial exp handles the edges on every path: -inf and underflow give 0, overflow +inf, NaN stays NaN', (t) => {
  const edges = [-Infinity, -1000, -88, 0, 89, 1000, Infinity, NaN];
  // Repeated to 32 values so that the vector paths, not only their scalar tails, see every edge.
  const values = [...edges, ...edges, ...edges, ...edges];
  for (const isa of addon.attentionRowIsas()) {
    const got = exp(isa, values);
    for (let i = 0; i < values.length; i += edges.length) {
      t.deepEqual([...got.slice(i, i + 7)], [0, 0, 0, 1, Infinity, Infinity, Infinity], isa);
      t.true(Number.isNaN(got[i + 7]), isa);
    }
  }
});

test('AVX2 and AVX-512 row kernels equal the scalar reference bit for bit', (t) => {
  const isas = addon.attentionRowIsas();
  t.log(`instruction sets here: ${isas.join(', ')}`);
  t.is(isas[0], 'scalar');
  const rand = random(2);
  const lengths = [...Array.from({ length: 41 }, (_, n) => n), 64, 127, 512, 515];
  for (const n of lengths) {
    // Scores spread over ±40 around the shift, a few masked (-inf): some results underflow to 0.
    const row = Float32Array.from({ length: n }, () => (rand() < 0.1 ? -Infinity : 80 * rand() - 40));
    const shift = n > 0 ? Math.fround(30 * rand()) : 0;
    const results = isas.map((isa) => {
      const x = row.slice();
      const sum = addon.attentionRowExpShiftSum(isa, x, shift);
      return { isa, x, sum, max: addon.attentionRowMax(isa, row) };
    });
    const reference = results[0]!;
    for (const r of results.slice(1)) {
      t.true(
        Buffer.from(r.x.buffer).equals(Buffer.from(reference.x.buffer)),
        `${r.isa} exp differs at n=${n}`,
      );
      t.is(r.sum, reference.sum, `${r.isa} sum differs at n=${n}`);
      t.is(r.max, reference.max, `${r.isa} max differs at n=${n}`);
    }
    // And the reference itself: the returned sum is the sum of the values it wrote.
    const exact = reference.x.reduce((s, v) => s + v, 0);
    t.true(Math.abs(reference.sum - exact) <= 1e-6 * exact, `sum ${reference.sum} vs ${exact} at n=${n}`);
    t.is(reference.max, n === 0 ? -Infinity : Math.max(...row));
  }
});

test('an unknown or unavailable instruction set is an error naming it', (t) => {
  t.throws(() => addon.attentionRowMax('sse' as AttentionRowIsa, new Float32Array(1)), {
    instanceOf: TypeError,
    message: /isa\) must be 'scalar', 'avx2' or 'avx512', got 'sse'/,
  });
});
