// Small synthetic embedding files for the V-NIAH tests, written the way a vision encoder's output
// would be saved (safetensors), including files the reader must reject.
import { writeFile } from 'node:fs/promises';

import { writeSafetensors } from '../../checkpoints/safetensors.js';
import { IGNORE_INDEX } from '../../eval/niah-cases.js';
import type { EmbeddingSpan, EvalResult, Trainer } from '../../worker-native/trainer.js';
import { random, randomInts } from '../kernels/numeric.js';

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

/**
 * One sequence of 64 letters ('a'..'z') evaluated with three spans of random vectors spliced in
 * (`spliced`), and on a second trainer with the same weights whose embedding rows 128… hold those
 * vectors and whose ids there point at them (`reference`): the two must agree. Controls: other ids
 * under the spans (must not matter), no spans, and the spans one token early. `make` creates a
 * trainer (one rank) of an untied model with a vocabulary above 128 + 16.
 */
export async function spliceAgainstTableRows(make: () => Promise<Trainer>): Promise<{
  spliced: EvalResult;
  reference: EvalResult;
  otherIds: EvalResult;
  tokensOnly: EvalResult;
  shifted: EvalResult;
}> {
  const T = 64;
  const rand = random(21);
  const text = randomInts(T, rand, 26).map((x) => 97 + x); // ids 128… appear nowhere
  const positions = Int32Array.from({ length: T }, (_, i) => i);
  const labels = randomInts(T, rand, 26).map((x) => 97 + x);
  labels[T - 1] = IGNORE_INDEX;
  const spans = [
    { start: 5, count: 8 },
    { start: 30, count: 4 },
    { start: 60, count: 4 }, // to the last token
  ];
  const spliced = await make();
  const reference = await make();
  try {
    const table = spliced.parameterViews().find((v) => v.name === 'model.embed_tokens.weight')!;
    const hidden = table.shape[1]!;
    const vectors = spans.map((s) => Float32Array.from({ length: s.count * hidden }, () => 0.5 * rand()));
    const embeddings: EmbeddingSpan[] = spans.map((s, i) => ({ start: s.start, rows: vectors[i]! }));
    // The reference: token 128 + j is the j-th spliced vector, and the spliced tokens are those ids.
    const params = spliced.snapshot().params;
    const refIds = text.slice();
    let j = 0;
    spans.forEach((s, i) => {
      for (let r = 0; r < s.count; r++, j++) {
        params.set(vectors[i]!.subarray(r * hidden, (r + 1) * hidden), table.offset + (128 + j) * hidden);
        refIds[s.start + r] = 128 + j;
      }
    });
    reference.load({ params });
    const otherIds = text.slice();
    for (const s of spans) otherIds.fill(3, s.start, s.start + s.count);
    return {
      spliced: await spliced.evaluate(text, positions, labels, embeddings),
      reference: await reference.evaluate(refIds, positions, labels),
      otherIds: await spliced.evaluate(otherIds, positions, labels, embeddings),
      tokensOnly: await spliced.evaluate(text, positions, labels),
      shifted: await spliced.evaluate(
        text,
        positions,
        labels,
        embeddings.map((e) => ({ ...e, start: e.start - 1 })),
      ),
    };
  } finally {
    spliced.close();
    reference.close();
  }
}
