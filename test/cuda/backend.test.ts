// The CUDA backend's host side: what the build reports, the device arena's accounting, bf16
// rounding, and argument checking. None of it needs a GPU; the one test that is about having no
// GPU runs only where there is none.
import test from 'ava';

import type { ArenaOutOfMemory } from '../../worker-native/cuda.js';
import { native } from '../../worker-native/native.js';
import { detectInventory } from '../../cluster/inventory.js';
import { api, cudaBuildTest, devices, gpuTest } from './gpu.js';
import { bf16Tensor, random, toBf16 } from './reference.js';

test('the cuda functions exist exactly when the addon was built with CUDA', (t) => {
  const addon = native();
  const info = addon.buildInfo();
  t.is(typeof addon.cudaFlashAttentionForward === 'function', info.cuda);
  t.is(typeof addon.cudaBackendInfo === 'function', info.cuda);
  t.is(api !== undefined, info.cuda);
  if (!info.cuda) t.is(info.cudaDevices, 0);
});

cudaBuildTest('cudaBackendInfo agrees with buildInfo and names the optional libraries', (t, cuda) => {
  const info = cuda.cudaBackendInfo();
  t.is(info.devices, devices);
  t.deepEqual(info.deviceNames, native().buildInfo().cudaDeviceNames);
  t.is(typeof info.cublasLt, 'boolean');
  t.is(typeof info.nccl, 'boolean');
});

cudaBuildTest('bf16 rounding is round-to-nearest-even, keeps NaN and overflows to infinity', (t, cuda) => {
  const ulp = 2 ** -7; // bf16 spacing in [1, 2)
  const cases: Array<[number, number]> = [
    [1, 1],
    [1 + ulp / 2, 1], // tie → even (1.0 has an even mantissa)
    [1 + (3 * ulp) / 2, 1 + 2 * ulp], // tie → even
    [1 + ulp / 2 + 2 ** -20, 1 + ulp], // just above the tie
    [-(1 + (3 * ulp) / 2), -(1 + 2 * ulp)],
    [3.1415927, 3.140625],
    [3.4e38, Infinity], // past the largest bf16 (≈3.39e38) by more than half a spacing
    [-Infinity, -Infinity],
    [1e-40, 2 ** -133], // subnormals round too: 0x000116c2 → 0x0001
    [0, 0],
  ];
  const got = cuda.cudaRoundToBf16(Float32Array.from(cases.map(([x]) => x)));
  cases.forEach(([x, want], i) => t.is(got[i], Math.fround(want), `round(${x})`));
  t.true(Number.isNaN(cuda.cudaRoundToBf16(new Float32Array([NaN]))[0]));
  // The tests' own rounding (reference.ts) agrees with the native one on random values.
  const rand = random(11);
  const x = Float32Array.from({ length: 4096 }, () => rand() * 2 ** (20 * rand()));
  const native32 = cuda.cudaRoundToBf16(x);
  t.deepEqual(Array.from(native32), Array.from(x, toBf16));
});

cudaBuildTest(
  'the device arena places blocks first-fit, counts them at 256 bytes, and merges frees',
  (t, cuda) => {
    const states = cuda.cudaArenaReplay(4096, [
      { alloc: 100 }, // 0: counted as 256
      { alloc: 300 }, // 1: 512
      { alloc: 256 }, // 2: 256
      { free: 1 },
      { alloc: 200 }, // 4: first fit lands in op 1's hole
      { free: 0 },
      { free: 4 }, // merges with the free range of op 0 on its left and the rest of op 1's hole on its right
      { alloc: 768 }, // 7: fits exactly where ops 0 and 1 were
    ]);
    t.deepEqual(
      states.map((s) => s.offset),
      [0, 256, 768, undefined, 256, undefined, undefined, 0],
    );
    t.deepEqual(
      states.map((s) => s.current),
      [256, 768, 1024, 512, 768, 512, 256, 1024],
    );
    t.deepEqual(
      states.map((s) => s.peak),
      [256, 768, 1024, 1024, 1024, 1024, 1024, 1024],
    );
    t.deepEqual(
      states.map((s) => s.liveBlocks),
      [1, 2, 3, 2, 3, 2, 1, 2],
    );
    t.is(states[6]!.largestFree, 4096 - 1024); // the free tail after op 2's block
  },
);

cudaBuildTest(
  'an allocation past the budget fails naming the request, the bytes in use and the budget',
  (t, cuda) => {
    const error = t.throws(() =>
      cuda.cudaArenaReplay(1000, [{ alloc: 512 }, { alloc: 256 }, { alloc: 1 }]),
    ) as ArenaOutOfMemory | undefined;
    t.is(
      error?.message,
      'device arena out of memory: requested 1 B with 768 B of 1000 B in use (256 bytes requested, 768 of 1000 bytes in use)',
    );
    t.is(error?.requested, 256);
    t.is(error?.inUse, 768);
    t.is(error?.budget, 1000);
    t.is(error?.op, 2);
  },
);

cudaBuildTest('a fragmented arena says so and names its largest free block', (t, cuda) => {
  const error = t.throws(() =>
    cuda.cudaArenaReplay(1024, [
      { alloc: 256 },
      { alloc: 256 },
      { alloc: 256 },
      { alloc: 256 },
      { free: 0 },
      { free: 2 },
      { alloc: 512 },
    ]),
  ) as ArenaOutOfMemory | undefined;
  t.regex(error?.message ?? '', /requested 512 B with 512 B of 1\.0 KiB in use/);
  t.regex(error?.message ?? '', /largest free block 256 bytes\): the arena is fragmented$/);
});

cudaBuildTest('arena ops are checked: a free must name an earlier, live allocation', (t, cuda) => {
  t.throws(() => cuda.cudaArenaReplay(1024, [{ alloc: 10 }, { free: 0 }, { free: 0 }]), {
    message: 'ops[2].free must name an earlier alloc op that was not freed',
  });
  t.throws(() => cuda.cudaArenaReplay(1024, [{ alloc: 0 }]), {
    message: 'ops[0].alloc must be a positive integer',
  });
});

cudaBuildTest('wrong argument types are TypeErrors naming the argument', (t, cuda) => {
  const x = new Float32Array(4);
  t.throws(() => cuda.cudaRmsNormForward([1, 2] as unknown as Float32Array, x, 2, 2, 1e-6), {
    instanceOf: TypeError,
    message: 'argument 0 (x) must be a Float32Array',
  });
  t.throws(() => cuda.cudaRope(x, new Float32Array(2) as unknown as Int32Array, 1, 2, 1e4, false), {
    instanceOf: TypeError,
    message: 'argument 1 (positions) must be an Int32Array',
  });
  t.throws(() => cuda.cudaGemm({ m: 1, n: 1 } as unknown as { m: number; n: number; k: number }, x, x), {
    instanceOf: TypeError,
    message: 'options.k must be a number',
  });
});

cudaBuildTest(
  'bad sizes and values reject with the problem named, before any device is touched',
  async (t, cuda) => {
    const rand = random(3);
    await t.throwsAsync(cuda.cudaRmsNormForward(bf16Tensor(4, rand), bf16Tensor(2, rand), 2, 3, 1e-6), {
      message: 'x has 4 elements, expected 6',
    });
    const dims = { qLen: 4, kvLen: 4, heads: 2, kvHeads: 2, headDim: 32 };
    const q = new Float32Array(4 * 2 * 32);
    await t.throwsAsync(cuda.cudaFlashAttentionForward(dims, 'causal', q, q, q), {
      message: 'attention: head_dim must be 64 or 128 on the GPU, got 32',
    });
    await t.throwsAsync(
      cuda.cudaFlashAttentionForward({ ...dims, headDim: 64, kvLen: 5 }, 'causal', q, q, q),
      {
        message: 'attention: causal masking needs q_len == kv_len, got 4 and 5',
      },
    );
    await t.throwsAsync(
      cuda.cudaFlashAttentionForward({ ...dims, headDim: 64, kvHeads: 3 }, 'none', q, q, q),
      {
        message: 'attention: heads=2 is not a multiple of kv_heads=3',
      },
    );
    await t.throwsAsync(
      cuda.cudaCrossEntropy(
        new Float32Array(4),
        new Float32Array(6),
        Int32Array.from([1, 3]),
        { tokens: 2, channels: 2, vocab: 3, chunkTokens: 1 },
        1,
        true,
      ),
      { message: 'labels[1] = 3 is outside the vocabulary [0, 3) and is not the ignore index -100' },
    );
    await t.throwsAsync(cuda.cudaRope(new Float32Array(4), Int32Array.from([0, -2]), 1, 2, 1e6, false), {
      message: 'positions[1] = -2 is negative',
    });
    await t.throwsAsync(cuda.cudaAdamW({ beta1: 1 }, 1, x1(), x1(), x1(), x1()), {
      message: 'AdamW beta1 must be in [0, 1), got 1.000000',
    });
    await t.throwsAsync(
      cuda.cudaGemm({ m: 2, n: 2, k: 2, beta: 1 }, new Float32Array(4), new Float32Array(4)),
      {
        message: 'c is required when options.beta is not 0',
      },
    );
  },
);

function x1(): Float32Array {
  return new Float32Array(1);
}

const cudaWithoutDevice = devices === 0 ? api : undefined;
if (cudaWithoutDevice) {
  test('without a GPU a kernel rejects saying no device is visible', async (t) => {
    const x = new Float32Array(4);
    await t.throwsAsync(cudaWithoutDevice.cudaRmsNormForward(x, new Float32Array(2), 2, 2, 1e-6), {
      message: 'cudaRmsNormForward: no CUDA device is visible to this process (cudaDevices = 0)',
    });
  });
} else {
  test.skip(`without a GPU a kernel rejects saying no device is visible (skipped: ${api ? 'a GPU is present' : 'built without CUDA'})`, () => {});
}

gpuTest(
  'the node inventory lists the GPUs through the addon, with their memory, without nvidia-smi',
  async (t, cuda) => {
    const info = cuda.cudaBackendInfo();
    const inventory = await detectInventory({ nvidiaSmi: '/nonexistent/nvidia-smi', hostname: 'gpu-host' });
    t.is(inventory.kind, 'cuda');
    t.deepEqual(
      inventory.devices,
      info.deviceNames.map((name, index) => ({ index, name, memoryBytes: info.deviceMemoryBytes[index] })),
    );
    t.true(inventory.devices.every((d) => d.memoryBytes > 2 ** 30));
    t.is(inventory.collectives, info.collectives);
    t.log(
      `${inventory.devices.length} × ${inventory.devices[0]?.name}; collectives: ${inventory.collectives}`,
    );
  },
);
