// The Qwen2 model's contract: HF layout and init, determinism, gradient accumulation and scaling,
// memory measured by its device arena (and refused past the budget), and clear input errors.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import { createQwen2Model, viewOf } from '../../worker-native/model.js';
import type { Qwen2Config } from '../../worker-native/model.js';
import { maxAbs } from '../kernels/numeric.js';
import { IGNORE, tinyBatch, tinyConfig, tinyModel } from './tiny.js';

const addon = native();
addon.setBlasThreads(1);

const MiB = 1 << 20;
const roundUp64 = (bytes: number) => Math.ceil(bytes / 64) * 64;

test('views are dense, in HF order, with HF shapes; the tied model has no lm_head', async (t) => {
  const model = await createQwen2Model(tinyConfig(), 1, MiB);
  const views = model.parameterViews();
  let offset = 0;
  for (const v of views) {
    t.is(v.offset, offset, v.name);
    t.is(
      v.numel,
      v.shape.reduce((a, b) => a * b, 1),
    );
    offset += v.numel;
  }
  t.is(model.numParameters(), offset);
  const shape = (name: string) => views.find((v) => v.name === name)?.shape;
  t.deepEqual(shape('model.embed_tokens.weight'), [64, 32]);
  t.deepEqual(shape('model.layers.1.self_attn.q_proj.weight'), [32, 32]);
  t.deepEqual(shape('model.layers.1.self_attn.k_proj.weight'), [16, 32]);
  t.deepEqual(shape('model.layers.1.self_attn.v_proj.bias'), [16]);
  t.deepEqual(shape('model.layers.0.self_attn.o_proj.weight'), [32, 32]);
  t.deepEqual(shape('model.layers.0.mlp.gate_proj.weight'), [48, 32]);
  t.deepEqual(shape('model.layers.0.mlp.down_proj.weight'), [32, 48]);
  t.deepEqual(shape('lm_head.weight'), [64, 32]);
  t.deepEqual(
    views.filter((v) => !v.weightDecay).map((v) => v.name.replace(/^model\.layers\.\d+\./, '')),
    [
      ...Array(2)
        .fill(0)
        .flatMap(() => [
          'self_attn.q_proj.bias',
          'self_attn.k_proj.bias',
          'self_attn.v_proj.bias',
          'input_layernorm.weight',
          'post_attention_layernorm.weight',
        ]),
      'model.norm.weight',
    ],
  );
  const tied = await createQwen2Model(tinyConfig(true), 1, MiB);
  t.is(tied.numParameters(), model.numParameters() - 64 * 32);
  t.false(tied.parameterViews().some((v) => v.name === 'lm_head.weight'));
});

test('HF init: matrices ~ N(0, 0.02), biases 0, norms 1; the same seed gives the same bits', async (t) => {
  const a = await createQwen2Model(tinyConfig(), 1234, MiB);
  const b = await createQwen2Model(tinyConfig(), 1234, MiB);
  const c = await createQwen2Model(tinyConfig(), 1235, MiB);
  const params = a.getParameters();
  t.deepEqual(b.getParameters(), params);
  t.notDeepEqual(c.getParameters(), params);
  const views = a.parameterViews();
  for (const v of views) {
    const x = viewOf(params, views, v.name);
    if (v.name.endsWith('norm.weight'))
      t.true(
        x.every((e) => e === 1),
        v.name,
      );
    else if (v.name.endsWith('.bias'))
      t.true(
        x.every((e) => e === 0),
        v.name,
      );
  }
  const embed = viewOf(params, views, 'model.embed_tokens.weight');
  const mean = embed.reduce((s, x) => s + x, 0) / embed.length;
  const std = Math.sqrt(embed.reduce((s, x) => s + (x - mean) ** 2, 0) / embed.length);
  t.true(Math.abs(mean) < (3 * 0.02) / Math.sqrt(embed.length), `mean ${mean}`);
  t.true(Math.abs(std - 0.02) < 0.05 * 0.02, `std ${std}`);
  // Tensors get different streams: q_proj of layer 0 and of layer 1 differ.
  t.notDeepEqual(
    viewOf(params, views, 'model.layers.0.self_attn.q_proj.weight'),
    viewOf(params, views, 'model.layers.1.self_attn.q_proj.weight'),
  );
});

test('at HF init the loss is close to ln(vocab)', async (t) => {
  const model = await createQwen2Model(tinyConfig(), 3, MiB);
  const { ids, positions, labels } = tinyBatch();
  const { loss, tokens } = await model.loss(ids, positions, labels);
  t.is(tokens, 20);
  t.true(Math.abs(loss - Math.log(64)) < 0.05, `${loss}`);
});

test('deterministic: the same inputs give bitwise the same loss and gradients', async (t) => {
  const { ids, positions, labels } = tinyBatch();
  const first = await tinyModel();
  const a = await first.forwardBackward(ids, positions, labels);
  const gradsA = first.getGradients();
  first.zeroGradients();
  const b = await first.forwardBackward(ids, positions, labels);
  t.deepEqual(b, a);
  t.deepEqual(first.getGradients(), gradsA);
  const second = await tinyModel();
  t.deepEqual(await second.forwardBackward(ids, positions, labels), a);
  t.deepEqual(second.getGradients(), gradsA);
  // The forward-only loss is the same computation.
  t.is((await first.loss(ids, positions, labels)).lossSum, a.lossSum);
});

test('gradients accumulate across calls and scale with gradScale', async (t) => {
  const { ids, positions, labels } = tinyBatch();
  const model = await tinyModel();
  const mean = await model.forwardBackward(ids, positions, labels);
  const once = model.getGradients();
  await model.forwardBackward(ids, positions, labels);
  const twice = model.getGradients();
  const scale = maxAbs(once);
  t.true(twice.every((g, i) => Math.abs(g - 2 * once[i]!) <= 1e-6 * scale));
  model.zeroGradients();
  t.is(maxAbs(model.getGradients()), 0);
  const summed = await model.forwardBackward(ids, positions, labels, { gradScale: 1 });
  t.is(summed.lossSum, mean.lossSum);
  const grads = model.getGradients();
  t.true(grads.every((g, i) => Math.abs(g - mean.tokens * once[i]!) <= 1e-5 * mean.tokens * scale));
  // The loss only: gradients untouched.
  await model.loss(ids, positions, labels);
  t.deepEqual(model.getGradients(), grads);
});

test('all labels ignored: loss 0 over 0 tokens and no gradient', async (t) => {
  const { ids, positions } = tinyBatch();
  const model = await tinyModel();
  const r = await model.forwardBackward(ids, positions, new Int32Array(ids.length).fill(IGNORE));
  t.deepEqual(r, { loss: 0, lossSum: 0, tokens: 0 });
  t.is(maxAbs(model.getGradients()), 0);
});

test('the arena holds exactly parameters and gradients between steps, and frees every activation', async (t) => {
  const model = await tinyModel();
  const bytes = 2 * roundUp64(4 * model.numParameters());
  t.deepEqual(model.memory(), { current: bytes, peak: bytes, budget: 16 * MiB, liveBlocks: 2 });
  const { ids, positions, labels } = tinyBatch();
  await model.forwardBackward(ids, positions, labels);
  const after = model.memory();
  t.is(after.current, bytes);
  t.is(after.liveBlocks, 2);
  t.true(after.peak > bytes);
  model.resetPeak();
  await model.loss(ids, positions, labels);
  // The forward alone keeps one layer's activations at a time.
  t.true(model.memory().peak < after.peak);
});

test('cross-entropy chunks bound the logits: the peak moves by exactly the workspace difference', async (t) => {
  // A vocabulary large enough that the logits workspace decides the peak.
  const config: Qwen2Config = { ...tinyConfig(), vocab_size: 2048 };
  const { ids, positions, labels } = tinyBatch();
  const activationPeaks: number[] = [];
  for (const ceChunkTokens of [4, 16]) {
    const model = new addon.Qwen2Model(config, 16 * MiB, { ceChunkTokens });
    await model.initParameters(1);
    const fixed = model.memory().current;
    await model.forwardBackward(ids, positions, labels);
    activationPeaks.push(model.memory().peak - fixed);
  }
  t.is(activationPeaks[1]! - activationPeaks[0]!, (16 - 4) * 2048 * 4);
  // Everything a step holds at its peak is less than the full [24 × 2048] logits would be alone.
  t.true(activationPeaks[0]! < 24 * 2048 * 4, `${activationPeaks[0]}`);
});

test('a model that does not fit its budget fails to build with the arena error', (t) => {
  const error = t.throws(() => new addon.Qwen2Model(tinyConfig(), 64 * 1024, { device: 'cpu:5' }));
  t.regex(
    error?.message ?? '',
    /^device cpu:5 out of memory: requested 77\.1 KiB with 0 B of 64\.0 KiB in use/,
  );
  t.is((error as Error & { code?: string }).code, 'ERR_LONGCTX_OUT_OF_MEMORY');
});

test('a step whose activations do not fit rejects, frees what it took, and leaves the model usable', async (t) => {
  const fixed = 2 * roundUp64(4 * 19744);
  const model = await tinyModel(false, fixed + 24 * 1024);
  const { ids, positions, labels } = tinyBatch();
  await t.throwsAsync(model.forwardBackward(ids, positions, labels), {
    message: /^device cpu:0 out of memory: requested .* with .* of 178\.2 KiB in use/,
  });
  t.is(model.memory().current, fixed);
  t.is(model.memory().liveBlocks, 2);
  t.is(maxAbs(model.getGradients()), 0);
  // A shorter sequence fits.
  const short = tinyBatch(3);
  const r = await model.forwardBackward(short.ids, short.positions, short.labels);
  t.true(r.loss > 0);
  t.true(model.memory().peak <= fixed + 24 * 1024);
});

test('bad inputs reject naming the array, index and reason', async (t) => {
  const model = await tinyModel();
  const { ids, positions, labels } = tinyBatch();
  const badIds = Int32Array.from(ids);
  badIds[3] = 64;
  await t.throwsAsync(model.forwardBackward(badIds, positions, labels), {
    message: 'ids[3] = 64 is outside the vocabulary [0, 64)',
  });
  await t.throwsAsync(model.forwardBackward(ids, positions.subarray(1), labels), {
    message: 'positions has 23 elements, expected ids.length = 24',
  });
  const badPositions = Int32Array.from(positions);
  badPositions[5] = -1;
  await t.throwsAsync(model.loss(ids, badPositions, labels), { message: 'positions[5] = -1 is negative' });
  const badLabels = Int32Array.from(labels);
  badLabels[2] = -1;
  await t.throwsAsync(model.forwardBackward(ids, positions, badLabels), {
    message: 'labels[2] = -1 is outside the vocabulary [0, 64) and is not the ignore index -100',
  });
  await t.throwsAsync(model.forwardBackward(new Int32Array(0), new Int32Array(0), new Int32Array(0)), {
    message: 'a step needs at least one token, got 0',
  });
  t.throws(() => model.forwardBackward(Float32Array.from(ids) as unknown as Int32Array, positions, labels), {
    instanceOf: TypeError,
    message: 'argument 0 (ids) must be an Int32Array',
  });
  t.throws(() => model.setParameters(new Float32Array(5)), {
    message: 'params has 5 elements, the model has 19744 parameters',
  });
});

test('bad configs are refused naming the field', (t) => {
  const make = (patch: Partial<Qwen2Config>) => () =>
    new addon.Qwen2Model({ ...tinyConfig(), ...patch }, MiB);
  t.throws(make({ num_attention_heads: 5 }), {
    message: 'config.hidden_size 32 is not divisible by num_attention_heads 5',
  });
  t.throws(make({ num_key_value_heads: 3 }), {
    message: 'config.num_attention_heads 4 is not divisible by num_key_value_heads 3',
  });
  t.throws(make({ rope_theta: -1 }), { message: /^config.rope_theta must be a positive finite number/ });
  t.throws(make({ hidden_act: 'gelu' }), {
    instanceOf: TypeError,
    message: /config.hidden_act must be "silu"/,
  });
  t.throws(make({ vocab_size: undefined }), {
    instanceOf: TypeError,
    message: 'config.vocab_size must be a number',
  });
  t.throws(make({ num_hidden_layers: 0 }), {
    message: 'config.num_hidden_layers must be a positive integer, got 0',
  });
});

test('while a step runs, other calls are refused instead of racing it', async (t) => {
  const model = await tinyModel();
  const { ids, positions, labels } = tinyBatch();
  const running = model.forwardBackward(ids, positions, labels);
  t.throws(() => model.getGradients(), { message: /Qwen2Model.getGradients: the model is busy/ });
  t.throws(() => model.forwardBackward(ids, positions, labels), { message: /busy/ });
  await running;
  t.true(maxAbs(model.getGradients()) > 0);
});
