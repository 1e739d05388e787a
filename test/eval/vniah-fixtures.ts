// Small synthetic embedding files for the V-NIAH tests, written the way a vision encoder's output
// would be saved (safetensors), including files the reader must reject.
import { writeFile } from 'node:fs/promises';

import { writeSafetensors } from '../../checkpoints/safetensors.js';

/** One F32 tensor of `shape` holding `values`. */
export async function writeEmbeddings(
  path: string,
  tensor: string,
  shape: number[],
  values: Float32Array,
): Promise<void> {
  await writeSafetensors(path, [{ name: tensor, dtype: 'F32', shape, data: values }]);
}

/** float32 → bf16 bytes, rounding to nearest even (as torch does). */
export function bf16Bytes(values: Float32Array): Uint8Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i]!;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

/**
 * A safetensors file written byte by byte, so a test can give any dtype string (one the reader
 * does not know, too).
 */
export async function writeRawSafetensors(
  path: string,
  tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.byteLength));
  await writeFile(
    path,
    Buffer.concat([length, json, ...Object.values(tensors).map((t) => Buffer.from(t.data))]),
  );
}
