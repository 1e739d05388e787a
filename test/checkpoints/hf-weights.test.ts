// Initial weights from Hugging Face Qwen2 folders that the test writes in the released layout
// (config.json + model.safetensors, or shards + model.safetensors.index.json), in F32, BF16 and
// F16, tied and untied. Each must give the trainer exactly the parameters, and so exactly the loss,
// of the same values loaded from our own checkpoint format.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { HfCheckpointError, loadHfWeights, hfCheckpointFolder } from '../../checkpoints/hf-weights.js';
import { parseManifest } from '../../checkpoints/manifest.js';
import {
  encodeHeader,
  writeSafetensors,
  type DType,
  type TensorToWrite,
} from '../../checkpoints/safetensors.js';
import { readFile } from 'node:fs/promises';
import { hfConfig, loadCheckpoint, saveCheckpoint } from '../../worker-native/host/checkpoint-io.js';
import { createTrainer, type ParameterView, type Trainer } from '../../worker-native/trainer.js';
import { rankTokens, sequence, tinyConfig, trainerOptions } from '../trainer/fixtures.js';

const SEQ = 32;
/** What config.json says the weights were trained as (the byte tokenizer's special ids). */
const TRAINED_AS = { seqLen: SEQ, precision: 'fp32', specials: { bos: 256, eos: 257, pad: 258 } } as const;

async function tempDir(t: { teardown(f: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'longctx-hf-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Values every dtype holds exactly: bf16 keeps the top 16 bits; f16 gets multiples of 2^-10 in [-2, 2]. */
function representable(params: Float32Array, dtype: DType): Float32Array {
  if (dtype === 'BF16') {
    const bits = new Uint32Array(Float32Array.from(params).buffer);
    for (let i = 0; i < bits.length; i++) bits[i] = bits[i]! & 0xffff0000;
    return new Float32Array(bits.buffer);
  }
  if (dtype === 'F16') return params.map((x) => Math.max(-2, Math.min(2, Math.round(x * 1024) / 1024)));
  return Float32Array.from(params);
}

/** Exact encoding of a representable value (see above) as IEEE half bits. */
function halfBits(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  const e = Math.floor(Math.log2(a));
  if (e < -14) return sign | Math.round(a / 2 ** -24);
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

function encode(values: Float32Array, dtype: DType): ArrayBufferView {
  if (dtype === 'F32') return values;
  const out = new Uint16Array(values.length);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(Float32Array.from(values).buffer);
    for (let i = 0; i < out.length; i++) out[i] = bits[i]! >>> 16;
  } else {
    for (let i = 0; i < out.length; i++) out[i] = halfBits(values[i]!);
  }
  return out;
}

interface Layout {
  dtype: DType;
  shards: number;
  /** A tied model's file also carries lm_head.weight (some exporters write it). */
  extraLmHead?: boolean;
}

/** Writes `params` as a Hugging Face folder in the given layout. */
async function writeHfFolder(
  dir: string,
  config: ReturnType<typeof tinyConfig>,
  views: ParameterView[],
  params: Float32Array,
  layout: Layout,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({ ...hfConfig(config, TRAINED_AS), rope_theta: 1e9 }),
  );
  const tensors: TensorToWrite[] = views.map((v) => ({
    name: v.name,
    dtype: layout.dtype,
    shape: v.shape,
    data: encode(params.subarray(v.offset, v.offset + v.numel), layout.dtype),
  }));
  if (layout.extraLmHead) {
    const embed = tensors.find((x) => x.name === 'model.embed_tokens.weight')!;
    tensors.push({ ...embed, name: 'lm_head.weight' });
  }
  if (layout.shards === 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    return;
  }
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(tensors.length / layout.shards);
  for (let s = 0; s < layout.shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(layout.shards).padStart(5, '0')}.safetensors`;
    const part = tensors.slice(s * per, (s + 1) * per);
    for (const x of part) weightMap[x.name] = file;
    await writeSafetensors(join(dir, file), part, { format: 'pt' });
  }
  await writeFile(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
}

async function evalLoss(trainer: Trainer): Promise<number> {
  const x = rankTokens(sequence(4, 0, SEQ, 64), 1, 0);
  return (await trainer.evaluate(x.ids, x.positions, x.labels)).loss;
}

/** The same parameters through our own checkpoint format: save, then load as resume does. */
async function ourFormatParams(
  dir: string,
  trainer: Trainer,
  params: Float32Array,
  config: ReturnType<typeof tinyConfig>,
) {
  const views = trainer.parameterViews();
  const zeros = new Float32Array(trainer.shard.end - trainer.shard.begin);
  const saved = await saveCheckpoint(
    {
      checkpointsDir: dir,
      jobId: 'hf-test',
      rank: 0,
      world: 1,
      config,
      views,
      shard: trainer.shard,
      numParameters: trainer.numParameters,
      retention: { keepLast: 1, keepEvery: 0, checkpointEvery: 1 },
      partsTimeoutMs: 10_000,
      trainedAs: TRAINED_AS,
    },
    { params, expAvg: zeros, expAvgSq: zeros, adamStep: 0 },
    { step: 1, adamStep: 0, sequenceCursor: 0, tokensSeen: 0, lastLoss: 0, seed: 5, worldSize: 1 },
  );
  const manifest = parseManifest(await readFile(join(saved!.dir, 'manifest.json'), 'utf8'), saved!.dir);
  return (await loadCheckpoint(saved!.dir, manifest, views, trainer.numParameters, trainer.shard)).params;
}

const cases: Array<[string, boolean, Layout]> = [
  ['untied, one F32 file', false, { dtype: 'F32', shards: 1 }],
  ['untied, 3 BF16 shards', false, { dtype: 'BF16', shards: 3 }],
  ['tied, one BF16 file', true, { dtype: 'BF16', shards: 1 }],
  ['tied, 2 F16 shards with an extra lm_head.weight', true, { dtype: 'F16', shards: 2, extraLmHead: true }],
  ['untied, one F16 file', false, { dtype: 'F16', shards: 1 }],
];

for (const [title, tied, layout] of cases) {
  test(`HF checkpoint (${title}) loads the exact parameters and loss of our own format`, async (t) => {
    const dir = await tempDir(t);
    const config = tinyConfig(2, tied);
    const source = await createTrainer(null, trainerOptions(config, { seed: 5 }));
    const views = source.parameterViews();
    t.is(
      views.some((v) => v.name === 'lm_head.weight'),
      !tied,
    );
    const params = representable(source.snapshot().params, layout.dtype);
    source.close();

    await writeHfFolder(join(dir, 'hf'), config, views, params, layout);
    const fromHf = await createTrainer(null, trainerOptions(config, { seed: 99 }));
    const folder = await hfCheckpointFolder(join(dir, 'hf', layout.shards === 1 ? 'model.safetensors' : ''));
    const loaded = await loadHfWeights(folder, config, fromHf.parameterViews(), fromHf.numParameters);
    t.is(
      loaded.config.rope_theta,
      1e9,
      'rope_theta may differ from the job (long-context training raises it)',
    );
    const before = await evalLoss(fromHf);
    fromHf.load({ params: loaded.params });
    t.deepEqual(fromHf.snapshot().params, params, 'every parameter exactly');

    const fromOurs = await createTrainer(null, trainerOptions(config, { seed: 99 }));
    fromOurs.load({ params: await ourFormatParams(join(dir, 'ckpt'), fromOurs, params, config) });
    const lossHf = await evalLoss(fromHf);
    const lossOurs = await evalLoss(fromOurs);
    t.is(lossHf, lossOurs, 'bitwise the same loss');
    t.not(lossHf, before, 'the loaded weights replaced the seed-99 init');
    t.true(Number.isFinite(lossHf) && lossHf > 0);
    fromHf.close();
    fromOurs.close();
  });
}

test('F16 and BF16 widen exactly (known bit patterns)', async (t) => {
  const { widenInto } = await import('../../checkpoints/hf-weights.js');
  const half = Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x7c00, 0x8000]);
  const out = new Float32Array(half.length);
  widenInto(out, 0, new Uint8Array(half.buffer), 'F16', 'x');
  t.deepEqual(Array.from(out), [1, -2, 65504, 2 ** -24, 2 ** -14, Math.fround(0.333251953125), Infinity, -0]);
  const bf = Uint16Array.from([0x3f80, 0xc040, 0x3eaa]);
  const outBf = new Float32Array(3);
  widenInto(outBf, 0, new Uint8Array(bf.buffer), 'BF16', 'x');
  t.deepEqual(Array.from(outBf), [1, -3, 0.33203125]);
});

test('bad HF checkpoints are rejected naming the file, the tensor or field, and the reason', async (t) => {
  const dir = await tempDir(t);
  const config = tinyConfig(2, false);
  const trainer = await createTrainer(null, trainerOptions(config));
  const views = trainer.parameterViews();
  const params = trainer.snapshot().params;
  const n = trainer.numParameters;
  trainer.close();
  const load = (folder: string, expected = config) => loadHfWeights(folder, expected, views, n);

  // Missing tensor: not in the index (sharded) and not in the single file.
  const sharded = join(dir, 'sharded');
  await writeHfFolder(sharded, config, views, params, { dtype: 'F32', shards: 2 });
  const index = JSON.parse(await readFile(join(sharded, 'model.safetensors.index.json'), 'utf8')) as {
    weight_map: Record<string, string>;
  };
  delete index.weight_map['model.layers.1.mlp.up_proj.weight'];
  await writeFile(join(sharded, 'model.safetensors.index.json'), JSON.stringify(index));
  await t.throwsAsync(load(sharded), {
    instanceOf: HfCheckpointError,
    message: /model\.safetensors\.index\.json: tensor model\.layers\.1\.mlp\.up_proj\.weight is missing/,
  });
  const single = join(dir, 'single');
  await writeHfFolder(
    single,
    config,
    views.filter((v) => v.name !== 'lm_head.weight'),
    params,
    { dtype: 'F32', shards: 1 },
  );
  await t.throwsAsync(load(single), {
    message: /single\/model\.safetensors: tensor lm_head\.weight is missing/,
  });

  // Wrong shape: k_proj written transposed ([32, 16] instead of [16, 32]): same bytes, wrong layout.
  const shaped = join(dir, 'shape');
  const transposed = views.map((v) =>
    v.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...v, shape: [v.shape[1]!, v.shape[0]!] } : v,
  );
  await writeHfFolder(shaped, config, transposed, params, { dtype: 'F32', shards: 1 });
  await t.throwsAsync(load(shaped), {
    message:
      /shape\/model\.safetensors: tensor model\.layers\.0\.self_attn\.k_proj\.weight has shape \[32, 16\], the model needs \[16, 32\]/,
  });

  // Unknown dtype: one the safetensors reader does not know (FP8), and one it knows but weights cannot be (I32).
  const fp8 = join(dir, 'fp8');
  await writeHfFolder(fp8, config, views, params, { dtype: 'F32', shards: 1 });
  const header = encodeHeader([
    { name: 'model.norm.weight', dtype: 'U8', shape: [32], data: new Uint8Array(32) },
  ]);
  const patched = Buffer.from(header.toString('latin1').replace('"U8"', '"F8"'), 'latin1');
  await writeFile(join(fp8, 'model.safetensors'), Buffer.concat([patched, Buffer.alloc(32)]));
  await t.throwsAsync(load(fp8), {
    message:
      /fp8\/model\.safetensors: tensor 'model\.norm\.weight' has dtype "F8", which this reader does not know/,
  });
  const ints = join(dir, 'ints');
  await writeHfFolder(ints, config, views, params, { dtype: 'F32', shards: 1 });
  const intTensors: TensorToWrite[] = views.map((v) => ({
    name: v.name,
    dtype: 'I32',
    shape: v.shape,
    data: new Int32Array(v.numel),
  }));
  await writeSafetensors(join(ints, 'model.safetensors'), intTensors);
  await t.throwsAsync(load(ints), {
    message:
      /ints\/model\.safetensors: tensor model\.embed_tokens\.weight has dtype I32; weights must be F32, BF16 or F16/,
  });

  // Config disagreeing with the job's model, missing config, no weights at all.
  await t.throwsAsync(load(sharded, { ...config, hidden_size: 64 }), {
    message: /sharded\/config\.json: hidden_size is 32 but the job's model has 64/,
  });
  await t.throwsAsync(load(sharded, { ...config, tie_word_embeddings: true }), {
    message: /config\.json: tie_word_embeddings is false but the job's model has true/,
  });
  await writeFile(
    join(ints, 'config.json'),
    JSON.stringify({ ...hfConfig(config, TRAINED_AS), model_type: 'llama' }),
  );
  await t.throwsAsync(load(ints), {
    message: /ints\/config\.json: model_type is "llama"; only 'qwen2' checkpoints can be loaded/,
  });
  const empty = join(dir, 'empty');
  await mkdir(empty);
  await t.throwsAsync(load(empty), {
    message: /empty\/config\.json: cannot read the model config \(ENOENT\)/,
  });
  await writeFile(join(empty, 'config.json'), JSON.stringify(hfConfig(config, TRAINED_AS)));
  await t.throwsAsync(load(empty), {
    message: /empty: neither model\.safetensors nor model\.safetensors\.index\.json is there/,
  });
  await t.throwsAsync(hfCheckpointFolder(join(dir, 'nowhere')), { message: /nowhere does not exist/ });
});
