// The float32 Qwen2 model against the float64 reference model (written from the naive kernels),
// and the reference against central finite differences: loss and every parameter gradient.
//
// Tolerances:
// - float32 model vs float64 reference: loss within 1e-6 relative; for every tensor, every entry
//   within 1e-5 × (largest |gradient| of that tensor). Measured: ~1e-6 (float32 rounding).
// - float64 reference vs central differences (h = 1e-5, in float64): 16 entries of every tensor
//   (always including its largest gradient) within 1e-7 + 1e-5·|g|.
// - float32 model vs its own float32 central differences of the mean loss (h = 3e-3; a check that
//   does not go through the reference): 3 entries of every tensor, including its largest gradient,
//   within 5e-3 × that tensor's largest gradient. Measured worst: 5.7e-4 (the float32 loss is good
//   to ~1e-7 relative, so smaller steps get noisier, larger ones less exact).
import test from 'ava';

import { native } from '../../worker-native/native.js';
import type { ParamView, Qwen2Model } from '../../worker-native/model.js';
import { assertMatchesFiniteDifference, maxAbs, random, sampleIndices } from '../kernels/numeric.js';
import { tinyBatch, tinyConfig, tinyModel } from './tiny.js';

const addon = native();
addon.setBlasThreads(1);

function expectedNames(tied: boolean): string[] {
  const layer = (n: number) =>
    [
      'self_attn.q_proj.weight',
      'self_attn.q_proj.bias',
      'self_attn.k_proj.weight',
      'self_attn.k_proj.bias',
      'self_attn.v_proj.weight',
      'self_attn.v_proj.bias',
      'self_attn.o_proj.weight',
      'mlp.gate_proj.weight',
      'mlp.up_proj.weight',
      'mlp.down_proj.weight',
      'input_layernorm.weight',
      'post_attention_layernorm.weight',
    ].map((s) => `model.layers.${n}.${s}`);
  return [
    'model.embed_tokens.weight',
    ...layer(0),
    ...layer(1),
    'model.norm.weight',
    ...(tied ? [] : ['lm_head.weight']),
  ];
}

async function gradientsOf(model: Qwen2Model) {
  const batch = tinyBatch();
  model.zeroGradients();
  const step = await model.forwardBackward(batch.ids, batch.positions, batch.labels);
  return { batch, step, grads: model.getGradients(), params: model.getParameters() };
}

for (const tied of [false, true]) {
  const variant = tied ? 'tied embeddings' : 'separate LM head';

  test(`${variant}: loss and every gradient match the float64 reference model`, async (t) => {
    const model = await tinyModel(tied);
    const views: ParamView[] = model.parameterViews();
    t.deepEqual(
      views.map((v) => v.name),
      expectedNames(tied),
    );
    const { batch, step, grads, params } = await gradientsOf(model);
    t.is(step.tokens, 20);
    const grads64 = new Float64Array(params.length);
    const ref = await addon.referenceQwen2ForwardBackward(
      tinyConfig(tied),
      Float64Array.from(params),
      batch.ids,
      batch.positions,
      batch.labels,
      1 / 20,
      grads64,
    );
    t.is(ref.count, 20);
    t.true(Math.abs(step.lossSum - ref.lossSum) <= 1e-6 * ref.lossSum, `${step.lossSum} vs ${ref.lossSum}`);
    t.is(step.loss, step.lossSum / 20);
    for (const v of views) {
      const got = grads.subarray(v.offset, v.offset + v.numel);
      const want = grads64.subarray(v.offset, v.offset + v.numel);
      const scale = maxAbs(want);
      t.true(scale > 1e-3, `${v.name}: gradient is (nearly) zero, ${scale}`);
      let worst = 0;
      for (let i = 0; i < v.numel; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      t.true(worst <= 1e-5 * scale, `${v.name}: max error ${worst} vs largest gradient ${scale}`);
    }
  });

  test(`${variant}: the float64 reference gradients match central finite differences`, async (t) => {
    const model = await tinyModel(tied);
    const params = Float64Array.from(model.getParameters());
    const batch = tinyBatch();
    const config = tinyConfig(tied);
    const grads = new Float64Array(params.length);
    await addon.referenceQwen2ForwardBackward(
      config,
      params,
      batch.ids,
      batch.positions,
      batch.labels,
      1,
      grads,
    );
    const loss = async (p: Float64Array) =>
      (
        await addon.referenceQwen2ForwardBackward(
          config,
          p,
          batch.ids,
          batch.positions,
          batch.labels,
          1,
          null,
        )
      ).lossSum;
    const rand = random(5);
    for (const v of model.parameterViews()) {
      const local = sampleIndices(v.numel, 16, rand, grads.subarray(v.offset, v.offset + v.numel));
      await assertMatchesFiniteDifference(
        t,
        v.name,
        loss,
        params,
        grads,
        local.map((i) => v.offset + i),
        {
          h: 1e-5,
          atol: 1e-7,
          rtol: 1e-5,
        },
      );
    }
  });
}

test('the float32 model gradients match its own float32 finite differences', async (t) => {
  const model = await tinyModel(false);
  const { batch, grads, params } = await gradientsOf(model);
  const rand = random(6);
  const loss = async (p: Float32Array) => {
    model.setParameters(p);
    return (await model.loss(batch.ids, batch.positions, batch.labels)).loss;
  };
  for (const v of model.parameterViews()) {
    const local = grads.subarray(v.offset, v.offset + v.numel);
    const scale = maxAbs(local);
    const entries = sampleIndices(v.numel, 3, rand, local).map((i) => v.offset + i);
    await assertMatchesFiniteDifference(t, v.name, loss, params, grads, entries, {
      h: 3e-3,
      atol: 5e-3 * scale,
      rtol: 0,
    });
  }
});
