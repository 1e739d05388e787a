// Initial weights from a Hugging Face Qwen2 checkpoint folder, as released models ship them:
// config.json, and either one model.safetensors or shards listed by model.safetensors.index.json
// ({"weight_map": {tensor name: shard file}}). Tensors may be F32, BF16 or F16; they are widened
// to float32 (exactly: every bf16 and f16 value is a float32 value). A tied model's checkpoint may
// carry lm_head.weight or not; an untied model needs it.
//
// The folder's config.json must describe the model the job trains: every field that fixes a
// tensor's shape or the model's function must agree, except rope_theta, which long-context
// training raises on purpose (LongVA: 1e6 → 1e9) without changing any weight.
import { open, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import type { Qwen2Config } from '../core/model-config.js';
import { readSafetensorsHeader, type SafetensorsHeader, type TensorEntry } from './safetensors.js';

export const HF_CONFIG_FILE = 'config.json';
export const HF_SINGLE_FILE = 'model.safetensors';
export const HF_INDEX_FILE = 'model.safetensors.index.json';

export class HfCheckpointError extends Error {
  override name = 'HfCheckpointError';
}

/** The config.json fields checked against the job's model: the model's own config type. */
export type HfModelConfig = Qwen2Config;

/** Where one tensor of the model goes in the flat float32 parameter buffer. */
export interface TensorSlot {
  name: string;
  offset: number;
  shape: number[];
}

const MUST_AGREE = [
  'hidden_size',
  'intermediate_size',
  'num_attention_heads',
  'num_key_value_heads',
  'num_hidden_layers',
  'vocab_size',
  'rms_norm_eps',
  'tie_word_embeddings',
] as const;

/** A path to the folder, or to a file in it (model.safetensors, the index, config.json). */
export async function hfCheckpointFolder(path: string): Promise<string> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new HfCheckpointError(`Hugging Face checkpoint ${path} does not exist`);
  return info.isDirectory() ? path : dirname(path);
}

/**
 * Reads config.json: the model a checkpoint folder holds (ours write the same file). Hugging
 * Face's Qwen2Config defaults apply to absent optional fields (tie_word_embeddings false,
 * num_key_value_heads = num_attention_heads, rope_theta 10000, rms_norm_eps 1e-6).
 */
export async function readHfModelConfig(dir: string): Promise<HfModelConfig> {
  const file = join(dir, HF_CONFIG_FILE);
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new HfCheckpointError(`${file}: cannot read the model config (${e.code ?? e.message})`);
  });
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new HfCheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const fail = (field: string, why: string): never => {
    throw new HfCheckpointError(`${file}: ${field} ${why}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('the file', 'is not a JSON object');
  if (raw.model_type !== undefined && raw.model_type !== 'qwen2') {
    fail('model_type', `is ${JSON.stringify(raw.model_type)}; only 'qwen2' checkpoints can be loaded`);
  }
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'silu') {
    fail('hidden_act', `is ${JSON.stringify(raw.hidden_act)}; the model implements 'silu' only`);
  }
  const num = (field: keyof HfModelConfig, fallback?: number): number => {
    const v = raw[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(field, 'is missing or not a number');
    return v as number;
  };
  const config: HfModelConfig = {
    hidden_size: num('hidden_size'),
    intermediate_size: num('intermediate_size'),
    num_attention_heads: num('num_attention_heads'),
    num_key_value_heads: num('num_key_value_heads', raw.num_attention_heads as number),
    num_hidden_layers: num('num_hidden_layers'),
    vocab_size: num('vocab_size'),
    rope_theta: num('rope_theta', 10000),
    rms_norm_eps: num('rms_norm_eps', 1e-6),
    tie_word_embeddings: raw.tie_word_embeddings === undefined ? false : (raw.tie_word_embeddings as boolean),
  };
  if (typeof config.tie_word_embeddings !== 'boolean') fail('tie_word_embeddings', 'must be true or false');
  return config;
}

/** readHfModelConfig, checked against the job's model (all of MUST_AGREE). */
export async function readHfConfig(dir: string, expected: HfModelConfig): Promise<HfModelConfig> {
  const config = await readHfModelConfig(dir);
  const file = join(dir, HF_CONFIG_FILE);
  for (const field of MUST_AGREE) {
    if (config[field] !== expected[field]) {
      throw new HfCheckpointError(
        `${file}: ${field} is ${String(config[field])} but the job's model has ${String(expected[field])}`,
      );
    }
  }
  return config;
}

/** Which file holds each tensor: the index's weight_map, or every tensor of model.safetensors. */
async function tensorFiles(dir: string): Promise<{ files: Map<string, string>; source: string }> {
  const indexPath = join(dir, HF_INDEX_FILE);
  const indexText = await readFile(indexPath, 'utf8').catch(() => undefined);
  if (indexText !== undefined) {
    let map: unknown;
    try {
      map = (JSON.parse(indexText) as { weight_map?: unknown }).weight_map;
    } catch (e) {
      throw new HfCheckpointError(`${indexPath}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof map !== 'object' || map === null) {
      throw new HfCheckpointError(`${indexPath}: weight_map is missing or not an object`);
    }
    const files = new Map<string, string>();
    for (const [name, file] of Object.entries(map)) {
      if (typeof file !== 'string' || basename(file) !== file) {
        throw new HfCheckpointError(`${indexPath}: weight_map.${name} must be a file name in the folder`);
      }
      files.set(name, file);
    }
    return { files, source: indexPath };
  }
  const single = join(dir, HF_SINGLE_FILE);
  if (!(await stat(single).catch(() => undefined))) {
    throw new HfCheckpointError(`${dir}: neither ${HF_SINGLE_FILE} nor ${HF_INDEX_FILE} is there`);
  }
  const header = await readSafetensorsHeader(single);
  return { files: new Map([...header.tensors.keys()].map((name) => [name, HF_SINGLE_FILE])), source: single };
}

/**
 * Reads the weights of a Hugging Face Qwen2 folder into a flat float32 buffer laid out by `slots`
 * (the trainer's parameter views). Only the tensors the model needs are read, one at a time.
 */
export async function loadHfWeights(
  dir: string,
  expected: HfModelConfig,
  slots: TensorSlot[],
  numParameters: number,
): Promise<{ params: Float32Array; config: HfModelConfig }> {
  const config = await readHfConfig(dir, expected);
  const { files, source } = await tensorFiles(dir);
  const headers = new Map<string, SafetensorsHeader>();
  const params = new Float32Array(numParameters);
  for (const slot of slots) {
    const file = files.get(slot.name);
    if (file === undefined) throw new HfCheckpointError(`${source}: tensor ${slot.name} is missing`);
    const path = join(dir, file);
    let header = headers.get(file);
    if (!header) {
      header = await readSafetensorsHeader(path).catch((e: Error) => {
        throw new HfCheckpointError(`${path}: ${e.message.replace(`${path}: `, '')}`);
      });
      headers.set(file, header);
    }
    const entry = header.tensors.get(slot.name);
    if (!entry)
      throw new HfCheckpointError(`${path}: tensor ${slot.name} is missing (the index names this file)`);
    if (entry.shape.join(',') !== slot.shape.join(',')) {
      throw new HfCheckpointError(
        `${path}: tensor ${slot.name} has shape [${entry.shape.join(', ')}], the model needs [${slot.shape.join(', ')}]`,
      );
    }
    const bytes = await readTensorBytes(path, header, entry);
    widenInto(params, slot.offset, bytes, entry.dtype, `${path}: tensor ${slot.name}`);
  }
  return { params, config };
}

async function readTensorBytes(
  path: string,
  header: SafetensorsHeader,
  entry: TensorEntry,
): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const buf = new Uint8Array(entry.end - entry.begin);
    await handle.read(buf, 0, buf.byteLength, header.dataStart + entry.begin);
    return buf;
  } finally {
    await handle.close();
  }
}

/** Little-endian F32/BF16/F16 bytes → float32 values at out[offset…]. */
export function widenInto(
  out: Float32Array,
  offset: number,
  bytes: Uint8Array,
  dtype: string,
  what: string,
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < bytes.byteLength / 4; i++) out[offset + i] = view.getFloat32(4 * i, true);
      return;
    case 'BF16': {
      // bf16 is the high half of a float32.
      const word = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < bytes.byteLength / 2; i++) {
        word.setUint32(0, view.getUint16(2 * i, true) << 16);
        out[offset + i] = word.getFloat32(0);
      }
      return;
    }
    case 'F16':
      for (let i = 0; i < bytes.byteLength / 2; i++)
        out[offset + i] = halfToFloat(view.getUint16(2 * i, true));
      return;
    default:
      throw new HfCheckpointError(`${what} has dtype ${dtype}; weights must be F32, BF16 or F16`);
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // subnormal (and zero)
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
