// The trainer on a CUDA device against the CPU trainer: the same Trainer (worker-native/src/train)
// with the CUDA kernel table (bf16 weights and activations, float32 accumulation, float32 master
// weights, gradients and moments). Needs a GPU, except the argument checks at the end.
//
// Accuracy, the bf16 rule (reference.ts): the GPU's loss and every gradient tensor (per Hugging Face
// view) are within twice the error of the naive bf16 implementation (the reference model with every
// stage's result rounded to bf16, model/qwen2_reference.h) against the float64 reference model, all
// three on the weights the GPU computes with (its float32 masters rounded to bf16) and the same
// tokens. Determinism: the GPU's gradients are bitwise the same under every
// checkpointing policy and offload mode (recomputation and staging run the same kernels on the
// same bits), and a stopped and resumed run ends with bitwise the same weights as a straight one.
import test, { type ExecutionContext } from 'ava';

import { predictMemory } from '../../orchestrator/plan/memory-model.js';
import type { Qwen2Config } from '../../worker-native/model.js';
import { native } from '../../worker-native/native.js';
import type {
  ActivationCheckpointing,
  Offload,
  Trainer,
  TrainerOptions,
} from '../../worker-native/trainer.js';
import { sequence } from '../trainer/fixtures.js';
import { devices, gpuTest } from './gpu.js';
import { assertBf16Rule, toBf16 } from './reference.js';

const MiB = 2 ** 20;
const POLICIES: ActivationCheckpointing[] = ['none', 'full', 'every-2', 'selective'];
const OFFLOADS: Offload[] = ['none', 'optimizer', 'params+optimizer'];
const SEQ = 128;
const LR = 1e-3;

/** head_dim 64 (what the flash kernels take), GQA 2/1, two layers, untied head. */
const config: Qwen2Config = {
  hidden_size: 128,
  intermediate_size: 256,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  num_hidden_layers: 2,
  vocab_size: 256,
  rope_theta: 1e6,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};

function options(device: string | undefined, overrides: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    config,
    seed: 5,
    deviceBudgetBytes: 256 * MiB,
    hostBudgetBytes: 256 * MiB,
    activationCheckpointing: 'none',
    offload: 'none',
    optimizer: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0 },
    ceChunkTokens: 32,
    initializerRange: 0.1,
    ...(device ? { device } : {}),
    ...overrides,
  };
}

const positions = Int32Array.from({ length: SEQ }, (_, i) => i);
const batch = (index: number) => sequence(3, index, SEQ, config.vocab_size);

async function withTrainer<T>(o: TrainerOptions, body: (trainer: Trainer) => Promise<T>): Promise<T> {
  const trainer = await native().createTrainer(null, o);
  try {
    return await body(trainer);
  } finally {
    trainer.close();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return Infinity;
    m = Math.max(m, d);
  }
  return m;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** The float64 truth and the naive bf16 implementation of one micro-batch on bf16 weights. */
async function references(params: Float32Array, ids: Int32Array, labels: Int32Array, gradScale: number) {
  const weights = Float64Array.from(params, toBf16);
  const truthGrads = new Float64Array(params.length);
  const naiveGrads = new Float64Array(params.length);
  const addon = native();
  const truth = await addon.referenceQwen2ForwardBackward(
    config,
    weights,
    ids,
    positions,
    labels,
    gradScale,
    truthGrads,
  );
  const naive = await addon.referenceQwen2ForwardBackward(
    config,
    weights,
    ids,
    positions,
    labels,
    gradScale,
    naiveGrads,
    true,
  );
  return { truth, truthGrads, naive, naiveGrads };
}

/** The bf16 rule for every Hugging Face view of the gradients. */
function assertGradients(
  t: ExecutionContext,
  trainer: Trainer,
  what: string,
  got: Float32Array,
  naive: Float64Array,
  truth: Float64Array,
) {
  for (const v of trainer.parameterViews()) {
    const at = (a: Float32Array | Float64Array) => a.subarray(v.offset, v.offset + v.numel);
    assertBf16Rule(t, `${what} ${v.name}`, at(got), at(naive), at(truth));
  }
}

gpuTest(
  'a training step on the GPU matches the float64 reference for every policy and offload mode',
  async (t) => {
    const { ids, labels } = batch(0);
    let first: Float32Array | undefined;
    for (const activationCheckpointing of POLICIES) {
      for (const offload of OFFLOADS) {
        const mode = `${activationCheckpointing}/${offload}`;
        await withTrainer(options('cuda:0', { activationCheckpointing, offload }), async (gpu) => {
          t.is(gpu.backend, 'cuda:0');
          const params = gpu.snapshot().params;
          const micro = await gpu.accumulate(ids, positions, labels, 1);
          const grads = gpu.gradients();

          const r = await references(params, ids, labels, 1 / micro.globalTokens);
          t.is(micro.globalTokens, r.truth.count);
          assertBf16Rule(t, `${mode} loss`, [micro.globalLossSum], [r.naive.lossSum], [r.truth.lossSum]);
          assertGradients(t, gpu, `${mode} grad`, grads, r.naiveGrads, r.truthGrads);

          // The same kernels on the same bits whatever the policy and offload: bitwise equal gradients.
          if (!first) first = grads;
          else t.true(sameBits(grads, first), `${mode}: gradients differ from none/none`);

          // The step on float32 masters: each weight moves by about lr (AdamW's first step), so the GPU's
          // weights stay within 2·lr of the CPU trainer's on the same gradients' signs.
          await gpu.step(LR);
          await withTrainer(options(undefined, { activationCheckpointing, offload }), async (cpu) => {
            await cpu.accumulate(ids, positions, labels, 1);
            await cpu.step(LR);
            const error = maxAbsDiff(gpu.snapshot().params, cpu.snapshot().params);
            t.true(error <= 2 * LR + 1e-6, `${mode} params after the step: ${error}`);
          });
        });
      }
    }
  },
);

async function train(trainer: Trainer, from: number, steps: number): Promise<void> {
  for (let s = from; s < from + steps; s++) {
    const { ids, labels } = batch(s);
    await trainer.accumulate(ids, positions, labels, 1);
    await trainer.step(LR);
  }
}

gpuTest('stop and resume on the GPU gives bitwise the weights of a straight run', async (t) => {
  for (const offload of OFFLOADS) {
    const straight = await withTrainer(options('cuda:0', { offload }), async (gpu) => {
      await train(gpu, 0, 3);
      return gpu.snapshot();
    });
    const saved = await withTrainer(options('cuda:0', { offload }), async (gpu) => {
      await train(gpu, 0, 1);
      return gpu.snapshot();
    });
    const resumed = await withTrainer(options('cuda:0', { offload, seed: 99 }), async (gpu) => {
      gpu.load(saved);
      await train(gpu, 1, 2);
      return gpu.snapshot();
    });
    t.true(sameBits(resumed.params, straight.params), `${offload}: params`);
    t.true(sameBits(resumed.expAvg, straight.expAvg), `${offload}: expAvg`);
    t.true(sameBits(resumed.expAvgSq, straight.expAvgSq), `${offload}: expAvgSq`);
    t.is(resumed.adamStep, 3);
  }
});

gpuTest('a CPU checkpoint continues on the GPU and a GPU checkpoint on the CPU', async (t) => {
  const cpuState = await withTrainer(options(undefined), async (cpu) => {
    await train(cpu, 0, 2);
    return cpu.snapshot();
  });
  const { ids, labels } = batch(2);
  const gpuState = await withTrainer(options('cuda:0'), async (gpu) => {
    gpu.load(cpuState);
    // The masters arrive unchanged: a snapshot gives back the very bits loaded.
    t.true(sameBits(gpu.snapshot().params, cpuState.params));
    const onGpu = await gpu.evaluate(ids, positions, labels);
    const weights = Float64Array.from(cpuState.params, toBf16);
    const addon = native();
    const truth = await addon.referenceQwen2ForwardBackward(config, weights, ids, positions, labels, 1, null);
    const naive = await addon.referenceQwen2ForwardBackward(
      config,
      weights,
      ids,
      positions,
      labels,
      1,
      null,
      true,
    );
    assertBf16Rule(
      t,
      'loss of the loaded checkpoint',
      [onGpu.globalLossSum],
      [naive.lossSum],
      [truth.lossSum],
    );
    await train(gpu, 2, 1);
    return gpu.snapshot();
  });
  const cpuContinued = await withTrainer(options(undefined), async (cpu) => {
    cpu.load(cpuState);
    await train(cpu, 2, 1);
    return cpu.snapshot();
  });
  t.is(gpuState.adamStep, 3);
  t.true(maxAbsDiff(gpuState.params, cpuContinued.params) <= 2 * LR + 1e-6);
  // And back: the GPU's checkpoint loads on the CPU bit for bit.
  await withTrainer(options(undefined), (cpu) => {
    cpu.load(gpuState);
    t.true(sameBits(cpu.snapshot().params, gpuState.params));
    return Promise.resolve();
  });
});

gpuTest("the planner's bf16 device peak is within 5% of the GPU arena's measured peak", async (t) => {
  for (const activationCheckpointing of POLICIES) {
    for (const offload of OFFLOADS) {
      const measured = await withTrainer(
        options('cuda:0', { activationCheckpointing, offload }),
        async (gpu) => {
          const { ids, labels } = batch(0);
          await gpu.accumulate(ids, positions, labels, 1);
          await gpu.step(LR);
          return gpu.memory().devicePeak;
        },
      );
      const predicted = predictMemory({
        config,
        seqLen: SEQ,
        devices: 1,
        precision: 'bf16',
        activationCheckpointing,
        offload,
        ceChunkTokens: 32,
      }).peak;
      const error = (predicted - measured) / measured;
      t.log(`${activationCheckpointing}/${offload}: measured ${measured}, predicted ${predicted}`);
      t.true(Math.abs(error) <= 0.05, `${activationCheckpointing}/${offload}: ${(100 * error).toFixed(1)}%`);
    }
  }
});

// These run everywhere: they only check how a CUDA device is asked for.
test('a trainer on a CPU reports its backend', async (t) => {
  await withTrainer(options(undefined), (cpu) => {
    t.is(cpu.backend, 'cpu');
    return Promise.resolve();
  });
});

test('a malformed cuda device is refused naming the option', (t) => {
  t.throws(() => native().createTrainer(null, options('cuda:zero')), {
    instanceOf: TypeError,
    message: /options\.device must be 'cuda:<index>'/,
  });
});

test('a cuda device that is not there is refused with the reason', async (t) => {
  if (devices > 0) return t.pass('this host has a GPU');
  const reason = native().buildInfo().cuda ? /cuda:0: this host has 0 CUDA device/ : /built without CUDA/;
  await t.throwsAsync(() => native().createTrainer(null, options('cuda:0')), { message: reason });
});

test('the naive bf16 reference rounds every stage: its error is bf16-sized, far above float32', async (t) => {
  const { ids, labels } = batch(0);
  const params = await withTrainer(options(undefined), (cpu) => Promise.resolve(cpu.snapshot().params));
  const weights = Float64Array.from(params, toBf16);
  const addon = native();
  const scale = 1 / labels.filter((l) => l !== -100).length;
  const grads = {
    truth: new Float64Array(params.length),
    naive: new Float64Array(params.length),
    f32: new Float32Array(params.length),
  };
  const truth = await addon.referenceQwen2ForwardBackward(
    config,
    weights,
    ids,
    positions,
    labels,
    scale,
    grads.truth,
  );
  const naive = await addon.referenceQwen2ForwardBackward(
    config,
    weights,
    ids,
    positions,
    labels,
    scale,
    grads.naive,
    true,
  );
  const f32 = await addon.referenceQwen2ForwardBackward(
    config,
    Float32Array.from(weights),
    ids,
    positions,
    labels,
    scale,
    grads.f32,
  );
  const naiveLoss = Math.abs(naive.lossSum - truth.lossSum) / truth.lossSum;
  const f32Loss = Math.abs(f32.lossSum - truth.lossSum) / truth.lossSum;
  t.log(`loss: naive bf16 ${naiveLoss.toExponential(2)}, float32 ${f32Loss.toExponential(2)} (relative)`);
  t.true(naiveLoss > 0 && naiveLoss < 2 ** -5);
  t.true(f32Loss < naiveLoss / 16);
  const naiveGrad = maxAbsDiff(grads.naive, grads.truth);
  const f32Grad = maxAbsDiff(grads.f32, grads.truth);
  t.log(`gradients: naive bf16 ${naiveGrad.toExponential(2)}, float32 ${f32Grad.toExponential(2)} (max abs)`);
  t.true(f32Grad < naiveGrad / 16);
  // Every naive gradient is a bf16 value.
  t.true(grads.naive.every((g) => toBf16(g) === g));
});
