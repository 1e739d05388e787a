// Precomputed embedding files for V-NIAH: one tensor of a safetensors file holding vectors the
// model's hidden size wide, e.g. a video encoded by LongVA's vision tower and projector
// ([frames, 144, hidden]: 144 visual tokens per frame) or a needle image ([tokens, hidden]).
// Files are checked when opened (tensor, dtype, shape against the model) and read a few rows at a
// time, so a rank reads only the rows of its own zigzag chunks and a haystack of thousands of
// frames never has to fit in memory at once.
import { open, stat, type FileHandle } from 'node:fs/promises';

import { readSafetensorsHeader, type TensorEntry } from '../checkpoints/safetensors.js';
import { widenInto } from '../checkpoints/hf-weights.js';
import { zigzagShard } from '../core/zigzag.js';
import type { EmbeddingSpan } from '../worker-native/trainer.js';

export class EmbeddingFileError extends Error {
  override name = 'EmbeddingFileError';
}

/** Where a file's vectors are: its path and the tensor's name (default: the file's only tensor). */
export interface EmbeddingFileRef {
  path: string;
  tensor?: string;
}

/** A span of a V-NIAH case whose tokens are rows of an embedding file (global positions). */
export interface EmbeddingSpanRef {
  /** Global position of the span's first token. */
  position: number;
  /** Tokens in the span, one row each. */
  rows: number;
  file: string;
  tensor: string;
  /** The file's row the span starts at (rows count across frames: frame f, token t is f·tokensPerFrame + t). */
  row: number;
}

const BYTES: Record<string, number> = { F32: 4, BF16: 2, F16: 2 };

/** An opened, checked embedding tensor. */
export class EmbeddingFile {
  private constructor(
    readonly path: string,
    readonly tensor: string,
    private readonly entry: TensorEntry,
    private readonly dataStart: number,
    /** Rows in all (frames × tokens per frame). */
    readonly rows: number,
    /** Tokens per frame for a [frames, tokens, hidden] tensor, 1 for [rows, hidden]. */
    readonly tokensPerFrame: number,
    readonly hiddenSize: number,
    private readonly handle: FileHandle,
  ) {}

  /** Opens `ref` and checks it holds vectors of `hiddenSize` floats (F32, BF16 or F16). */
  static async open(ref: EmbeddingFileRef, hiddenSize: number): Promise<EmbeddingFile> {
    const { path } = ref;
    const fail = (why: string): never => {
      throw new EmbeddingFileError(`${path}: ${why}`);
    };
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) fail('does not exist or is not a file');
    const header = await readSafetensorsHeader(path).catch((e: Error) =>
      fail(e.message.replace(`${path}: `, '')),
    );
    const names = [...header.tensors.keys()];
    let tensor = ref.tensor;
    if (tensor === undefined) {
      if (names.length !== 1) {
        fail(
          names.length === 0
            ? 'holds no tensor'
            : `holds ${names.length} tensors (${names.join(', ')}): name the one to use`,
        );
      }
      tensor = names[0]!;
    }
    const entry = header.tensors.get(tensor);
    if (!entry) fail(`tensor '${tensor}' is missing (the file holds: ${names.join(', ') || 'nothing'})`);
    const { dtype, shape } = entry!;
    const what = `tensor '${tensor}'`;
    if (!(dtype in BYTES)) fail(`${what} has dtype ${dtype}; embeddings must be F32, BF16 or F16`);
    const dims = `shape [${shape.join(', ')}]`;
    if (shape.length !== 2 && shape.length !== 3)
      fail(
        `${what} has ${dims}; embeddings are [rows, hidden_size] or [frames, tokens_per_frame, hidden_size]`,
      );
    if (shape.at(-1) !== hiddenSize)
      fail(
        `${what} has ${dims}: vectors of ${shape.at(-1)} values, the model's hidden_size is ${hiddenSize}`,
      );
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    if (rows === 0) fail(`${what} has ${dims}: no vectors`);
    const handle = await open(path, 'r');
    return new EmbeddingFile(
      path,
      tensor,
      entry!,
      header.dataStart,
      rows,
      shape.length === 3 ? shape[1]! : 1,
      hiddenSize,
      handle,
    );
  }

  /** Rows [first, first + count) as float32, row-major; rejects a non-finite value, naming its row. */
  async read(first: number, count: number): Promise<Float32Array> {
    if (!(Number.isInteger(first) && Number.isInteger(count) && first >= 0 && count >= 0))
      throw new RangeError(`${this.path}: rows ${first}+${count} is not a row range`);
    if (first + count > this.rows) {
      throw new EmbeddingFileError(
        `${this.path}: tensor '${this.tensor}' has ${this.rows} rows, rows ${first}..${first + count - 1} were asked for`,
      );
    }
    const width = BYTES[this.entry.dtype]! * this.hiddenSize;
    const bytes = new Uint8Array(count * width);
    await this.handle.read(bytes, 0, bytes.byteLength, this.dataStart + this.entry.begin + first * width);
    const out = new Float32Array(count * this.hiddenSize);
    widenInto(out, 0, bytes, this.entry.dtype, `${this.path}: tensor '${this.tensor}'`);
    for (let i = 0; i < out.length; i++) {
      if (!Number.isFinite(out[i]!)) {
        const row = first + Math.floor(i / this.hiddenSize);
        throw new EmbeddingFileError(
          `${this.path}: tensor '${this.tensor}' row ${row} holds ${out[i]} (embeddings must be finite)`,
        );
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/**
 * A case's spans cut to one rank's zigzag shard: the parts inside the rank's two chunks, as
 * indices into its tokens (local order: first chunk, then second) with the file rows they take.
 */
export function shardSpans(
  spans: readonly EmbeddingSpanRef[],
  seqLen: number,
  world: number,
  rank: number,
): Array<{ start: number; ref: EmbeddingSpanRef }> {
  const shard = zigzagShard(seqLen, world, rank);
  const out: Array<{ start: number; ref: EmbeddingSpanRef }> = [];
  shard.starts.forEach((chunkStart, c) => {
    const chunkEnd = chunkStart + shard.chunkTokens;
    for (const s of spans) {
      const begin = Math.max(s.position, chunkStart);
      const end = Math.min(s.position + s.rows, chunkEnd);
      if (begin >= end) continue;
      out.push({
        start: c * shard.chunkTokens + (begin - chunkStart),
        ref: { ...s, position: begin, rows: end - begin, row: s.row + (begin - s.position) },
      });
    }
  });
  return out;
}

/** Embedding files opened on first use, for the spans of many cases. */
export class EmbeddingReaders {
  private readonly files = new Map<string, Promise<EmbeddingFile>>();

  constructor(private readonly hiddenSize: number) {}

  /** This rank's rows of a case's spans, ready for Trainer.evaluate. */
  async shard(
    spans: readonly EmbeddingSpanRef[],
    seqLen: number,
    world: number,
    rank: number,
  ): Promise<EmbeddingSpan[]> {
    const out: EmbeddingSpan[] = [];
    for (const { start, ref } of shardSpans(spans, seqLen, world, rank)) {
      const file = await this.file({ path: ref.file, tensor: ref.tensor });
      out.push({ start, rows: await file.read(ref.row, ref.rows) });
    }
    return out;
  }

  private file(ref: EmbeddingFileRef): Promise<EmbeddingFile> {
    const key = `${ref.path}\0${ref.tensor}`;
    let file = this.files.get(key);
    if (!file) {
      file = EmbeddingFile.open(ref, this.hiddenSize);
      this.files.set(key, file);
    }
    return file;
  }

  async close(): Promise<void> {
    const files = await Promise.allSettled(this.files.values());
    for (const f of files) if (f.status === 'fulfilled') await f.value.close();
    this.files.clear();
  }
}
