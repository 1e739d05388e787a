// The CUDA kernels of the Qwen2 block, each against its float64 reference under the bf16 rule
// (reference.ts): error at most twice a naive bf16 implementation's. Needs a GPU.
import { gpuTest } from './gpu.js';
import {
  IGNORE_INDEX,
  adamW,
  assertBf16Rule,
  bf16Tensor,
  crossEntropy,
  exact,
  gemm,
  maxAbsError,
  random,
  rmsNormBackward,
  rmsNormForward,
  rope,
  ropeTables,
  swiGluBackward,
  swiGluForward,
  toBf16,
} from './reference.js';

gpuTest('RMSNorm forward and backward', async (t, cuda) => {
  const rand = random(1);
  // 300 tokens: more than one dweight group of 64; 200 channels: not a multiple of the block.
  const tokens = 300,
    channels = 200,
    eps = 1e-6;
  const x = bf16Tensor(tokens * channels, rand, 2);
  const w = bf16Tensor(channels, rand);
  const dout = bf16Tensor(tokens * channels, rand);
  const fwd = await cuda.cudaRmsNormForward(x, w, tokens, channels, eps);
  const truth = rmsNormForward(x, w, tokens, channels, eps, exact);
  const naive = rmsNormForward(x, w, tokens, channels, eps, toBf16);
  assertBf16Rule(t, 'out', fwd.out, naive.out, truth.out);
  assertBf16Rule(t, 'rstd', fwd.rstd, naive.rstd, truth.rstd);

  const bwd = await cuda.cudaRmsNormBackward(dout, x, w, Float32Array.from(truth.rstd), tokens, channels);
  const bTruth = rmsNormBackward(dout, x, w, tokens, channels, eps, exact);
  const bNaive = rmsNormBackward(dout, x, w, tokens, channels, eps, toBf16);
  assertBf16Rule(t, 'dx', bwd.dx, bNaive.dx, bTruth.dx);
  assertBf16Rule(t, 'dweight', bwd.dweight, bNaive.dweight, bTruth.dweight);
});

gpuTest('RoPE tables stay exact to float32 at theta 1e9 and positions up to 224K', async (t, cuda) => {
  const headDim = 128,
    theta = 1e9;
  const positions = Int32Array.from([0, 1, 2, 1000, 65535, 131071, 200000, 224 * 1024 - 1, 229375]);
  const got = await cuda.cudaRopeTables(positions, headDim, theta);
  const truth = ropeTables(positions, headDim, theta);
  // Angles in double: the only error left is rounding cos/sin to float32 (half an ulp of 1).
  const errCos = maxAbsError(got.cos, truth.cos),
    errSin = maxAbsError(got.sin, truth.sin);
  t.log(`cos error ${errCos}, sin error ${errSin}`);
  t.true(errCos <= 2 ** -24 && errSin <= 2 ** -24);
  // What the double precision buys: float32 angles would be off by far more.
  let float32Error = 0;
  for (let i = 0; i < positions.length; i++) {
    const angle32 = Math.fround(positions[i]! * Math.fround(Math.pow(theta, -2 / headDim)));
    float32Error = Math.max(float32Error, Math.abs(Math.cos(angle32) - truth.cos[i * (headDim / 2) + 1]!));
  }
  t.log(`a float32 angle would be off by up to ${float32Error} in cos`);
  t.true(float32Error > 1000 * errCos);
});

gpuTest('RoPE rotation forward and inverse at explicit zigzag positions', async (t, cuda) => {
  const rand = random(2);
  const heads = 3,
    headDim = 64,
    theta = 1e9;
  // Two zigzag chunks of one rank: not contiguous, far into the sequence.
  const positions = Int32Array.from([...Array(40).keys()].map((i) => (i < 20 ? 1000 + i : 200000 + i)));
  const x = bf16Tensor(positions.length * heads * headDim, rand, 2);
  for (const inverse of [false, true]) {
    const got = await cuda.cudaRope(x, positions, heads, headDim, theta, inverse);
    const truth = rope(x, positions, heads, headDim, theta, inverse, exact);
    const naive = rope(x, positions, heads, headDim, theta, inverse, toBf16);
    assertBf16Rule(t, inverse ? 'inverse' : 'forward', got.out, naive, truth);
  }
});

gpuTest('SwiGLU forward and backward', async (t, cuda) => {
  const rand = random(3);
  const n = 10007;
  const gate = bf16Tensor(n, rand, 4),
    up = bf16Tensor(n, rand, 2),
    dact = bf16Tensor(n, rand);
  const fwd = await cuda.cudaSwiGluForward(gate, up);
  assertBf16Rule(t, 'act', fwd.act, swiGluForward(gate, up, toBf16), swiGluForward(gate, up, exact));
  const bwd = await cuda.cudaSwiGluBackward(dact, gate, up);
  const truth = swiGluBackward(dact, gate, up, exact),
    naive = swiGluBackward(dact, gate, up, toBf16);
  assertBf16Rule(t, 'dgate', bwd.dgate, naive.dgate, truth.dgate);
  assertBf16Rule(t, 'dup', bwd.dup, naive.dup, truth.dup);
});

gpuTest('residual add rounds the exact sum once', async (t, cuda) => {
  const rand = random(4);
  const a = bf16Tensor(5000, rand, 8),
    b = bf16Tensor(5000, rand);
  const { out } = await cuda.cudaResidualForward(a, b);
  t.deepEqual(
    Array.from(out),
    Array.from(a, (ai, i) => toBf16(ai + b[i]!)),
  );
});

// Both implementations under the bf16 rule: our tiled kernel always, cuBLASLt where the host has it
// (opened at run time; on a GPU host without it the test says so and checks the tiled kernel only).
gpuTest(
  'GEMM (tiled and cuBLASLt): every transpose, ragged edges, beta accumulation, float32 and bf16 results',
  async (t, cuda) => {
    const backends = cuda.cudaBackendInfo().cublasLt
      ? (['tiled', 'cublasLt'] as const)
      : (['tiled'] as const);
    if (backends.length === 1)
      t.log(`cuBLASLt not usable here: ${cuda.cudaBackendInfo().libraries.cublasLt.error}`);
    const rand = random(5);
    // m, n, k off the 128/128/32 tiles. 136×104×72: every leading dimension a multiple of 8, so the
    // 16-byte cp.async path with zero-filled edge chunks; 65×257×37: the element-by-element path.
    for (const backend of backends)
      for (const [m, n, k] of [
        [136, 104, 72],
        [65, 257, 37],
      ] as const) {
        for (const transA of [false, true])
          for (const transB of [false, true])
            for (const out of ['float32', 'bf16'] as const) {
              const opts = { m, n, k, transA, transB, alpha: 0.5, beta: 2, out, backend };
              const a = bf16Tensor(m * k, rand),
                b = bf16Tensor(k * n, rand);
              const c = out === 'bf16' ? bf16Tensor(m * n, rand) : Float32Array.from(bf16Tensor(m * n, rand));
              const got = await cuda.cudaGemm(opts, a, b, c);
              const name = `${backend} ${m}x${n}x${k} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} ${out}`;
              const truth = gemm(opts, a, b, c, exact);
              // A naive bf16 GEMM rounds its result to bf16; the float32 path must do much better.
              assertBf16Rule(t, name, got.c, gemm(opts, a, b, c, toBf16), truth);
              if (out === 'float32')
                t.true(maxAbsError(got.c, truth) < 1e-4, `${name}: float32 accumulation`);
            }
      }
  },
);

gpuTest('GEMM auto backend (cuBLASLt when the host has it) agrees with the tiled kernel', async (t, cuda) => {
  const rand = random(6);
  const opts = { m: 256, n: 192, k: 320, transB: true };
  const a = bf16Tensor(256 * 320, rand),
    b = bf16Tensor(192 * 320, rand);
  const tiled = await cuda.cudaGemm({ ...opts, backend: 'tiled' }, a, b);
  const auto = await cuda.cudaGemm({ ...opts, backend: 'auto' }, a, b);
  t.log(`auto backend is ${cuda.cudaBackendInfo().cublasLt ? 'cuBLASLt' : 'the tiled kernel'}`);
  t.true(maxAbsError(auto.c, tiled.c) < 1e-4);
});

gpuTest('chunked cross-entropy: loss, count and gradients, with ignored tokens', async (t, cuda) => {
  const rand = random(7);
  const tokens = 70,
    channels = 96,
    vocab = 333;
  const hidden = bf16Tensor(tokens * channels, rand, 2);
  const weight = bf16Tensor(vocab * channels, rand, 0.5);
  const labels = Int32Array.from({ length: tokens }, (_, i) =>
    i % 7 === 3 ? IGNORE_INDEX : Math.floor(((rand() + 1) / 2) * vocab),
  );
  const counted = labels.filter((y) => y !== IGNORE_INDEX).length;
  const gradScale = 1 / counted;
  const truth = crossEntropy(hidden, weight, labels, tokens, channels, vocab, gradScale, exact);
  const naive = crossEntropy(hidden, weight, labels, tokens, channels, vocab, gradScale, toBf16);
  // Chunks of 16 (the last one partial) must give what one chunk gives.
  for (const chunkTokens of [16, tokens]) {
    const got = await cuda.cudaCrossEntropy(
      hidden,
      weight,
      labels,
      { tokens, channels, vocab, chunkTokens },
      gradScale,
      true,
    );
    t.is(got.count, counted);
    assertBf16Rule(t, `loss (chunk ${chunkTokens})`, [got.lossSum], [naive.lossSum], [truth.lossSum]);
    assertBf16Rule(t, `dhidden (chunk ${chunkTokens})`, got.dhidden!, naive.dhidden, truth.dhidden);
    assertBf16Rule(t, `dweight (chunk ${chunkTokens})`, got.dweight!, naive.dweight, truth.dweight);
  }
  const lossOnly = await cuda.cudaCrossEntropy(
    hidden,
    weight,
    labels,
    { tokens, channels, vocab, chunkTokens: 32 },
    gradScale,
    false,
  );
  t.is(lossOnly.dhidden, undefined);
  t.true(Math.abs(lossOnly.lossSum - truth.lossSum) < 1e-3);
});

gpuTest('AdamW on float32 master weights, and the bf16 copy it writes', async (t, cuda) => {
  const rand = random(8);
  const n = 4099;
  const hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const params = Float32Array.from({ length: n }, () => rand());
  const grads = Float32Array.from({ length: n }, () => 0.01 * rand());
  const m = Float32Array.from({ length: n }, () => 0.001 * rand());
  const v = Float32Array.from({ length: n }, () => 1e-5 * Math.abs(rand()));
  for (const step of [1, 7]) {
    const got = await cuda.cudaAdamW(hyper, step, params, grads, m, v);
    const truth = adamW(hyper, step, params, grads, m, v, exact);
    // Master weights are float32, so the bf16 rule does not apply: the update is a handful of
    // float32 operations (in torch's order, not the textbook's), so each result must be within 4
    // float32 ulps of the largest value of its tensor. A missing bias correction or weight decay is
    // off by ~1e-4, hundreds of times more.
    for (const key of ['params', 'm', 'v'] as const) {
      const scale = Math.max(...Array.from(truth[key], Math.abs));
      const error = maxAbsError(got[key], truth[key]);
      t.log(
        `step ${step} ${key}: error ${error.toExponential(3)} (${(error / (scale * 2 ** -23)).toFixed(2)} ulps)`,
      );
      t.true(error <= 4 * 2 ** -23 * scale, `step ${step} ${key}: error ${error}`);
    }
    t.deepEqual(Array.from(got.paramsBf16), Array.from(got.params, toBf16));
  }
});

gpuTest('the gradient sum of squares is summed in double and reproducible', async (t, cuda) => {
  const rand = random(9);
  const x = Float32Array.from({ length: 1_000_003 }, () => rand() * 10 ** (2 * rand()));
  // The truth by compensated (Neumaier) summation: exact to a few units of the last place.
  let truth = 0;
  let compensation = 0;
  for (const xi of x) {
    const term = xi * xi;
    const sum = truth + term;
    compensation += Math.abs(truth) >= term ? truth - sum + term : term - sum + truth;
    truth = sum;
  }
  truth += compensation;
  const first = await cuda.cudaSumOfSquares(x);
  const second = await cuda.cudaSumOfSquares(x);
  t.is(first.sum, second.sum);
  t.true(
    Math.abs(first.sum - truth) / truth < 1e-12,
    `relative error ${Math.abs(first.sum - truth) / truth}`,
  );
});
