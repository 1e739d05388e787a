// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON
// header mapping each tensor name to {dtype, shape, data_offsets}, then the raw little-endian
// tensor bytes. Files written here load in `safetensors`/transformers as they are.
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

export type DType = 'F32' | 'F64' | 'BF16' | 'F16' | 'I32' | 'I64' | 'U8';

const DTYPE_BYTES: Record<DType, number> = { F32: 4, F64: 8, BF16: 2, F16: 2, I32: 4, I64: 8, U8: 1 };

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  /** Raw little-endian bytes; a typed array's underlying bytes are used as they are. */
  data: ArrayBufferView;
}

export interface TensorEntry {
  dtype: DType;
  shape: number[];
  /** Byte offsets into the data section (after the header). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
  /** Where the data section starts in the file. */
  dataStart: number;
}

export interface WrittenFile {
  bytes: number;
  sha256: string;
}

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Builds the header bytes (padded with spaces to a multiple of 8, as the reference writer does). */
export function encodeHeader(tensors: TensorToWrite[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`safetensors: tensor '${t.name}' appears twice`);
    seen.add(t.name);
    const expected = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new Error(
        `safetensors: tensor '${t.name}' has ${t.data.byteLength} bytes, shape [${t.shape.join(', ')}] of ${t.dtype} needs ${expected}`,
      );
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const out = Buffer.alloc(8 + Buffer.byteLength(json));
  out.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  out.write(json, 8);
  return out;
}

/**
 * Bytes per write. Each chunk is hashed on this thread while libuv's pool writes it, so hashing
 * (sha256 runs at about the disk's speed) and writing overlap instead of adding up. A chunk this
 * small is still in the CPU's cache when the second of the two reads it (8 MiB chunks made the
 * whole write ~40 % slower here), and hashes in about a millisecond, so the event loop (a training
 * loop awaiting the trainer) is never held for long.
 */
export const WRITE_CHUNK_BYTES = 1 << 20;

/**
 * Written bytes after which the file's data is flushed to disk in the background (fdatasync, one
 * at a time) while writing and hashing go on. Without it the kernel holds everything until the
 * final fsync, which then flushes the whole file while nothing else happens (305 MB: ~120 ms of
 * ~360 ms here); with it that final fsync has little left to do.
 */
export const FLUSH_EVERY_BYTES = 32 << 20;

export interface WriteOptions {
  chunkBytes?: number;
  flushBytes?: number;
  /**
   * true (default): hash each chunk while the pool writes it, two threads busy, fastest. false:
   * hash, then write, one thread busy at a time: for a save in the background, which then takes
   * fewer of the machine's cores away from training.
   */
  overlap?: boolean;
}

/** Sequential writes to one file that hash what they write and flush as they go. */
class HashingWriter {
  readonly hash: Hash = createHash('sha256');
  private unflushed = 0;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly handle: FileHandle,
    private readonly chunkBytes: number,
    private readonly flushBytes: number,
    private readonly overlap: boolean,
  ) {}

  async write(bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.byteLength; at += this.chunkBytes) {
      const chunk = bytes.subarray(at, Math.min(at + this.chunkBytes, bytes.byteLength));
      if (this.overlap) {
        const writing = this.writeFully(chunk);
        this.hash.update(chunk);
        await writing;
      } else {
        this.hash.update(chunk);
        await this.writeFully(chunk);
      }
      this.unflushed += chunk.byteLength;
      if (this.unflushed >= this.flushBytes) {
        this.unflushed = 0;
        await this.flushing;
        this.flushing = this.handle.datasync();
        // Its failure surfaces where it is awaited (next flush or sync), not as an unhandled rejection.
        this.flushing.catch(() => {});
      }
    }
  }

  /** Makes everything written durable (the file's metadata too). */
  async sync(): Promise<void> {
    await this.flushing;
    await this.handle.sync();
  }

  /** Waits for a background flush to end, whatever its outcome (before closing after an error). */
  async settled(): Promise<void> {
    await this.flushing.catch(() => {});
  }

  private async writeFully(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, written, bytes.byteLength - written);
      written += bytesWritten;
    }
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`safetensors: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Writes a safetensors file, hashing as it goes (no second read), and fsyncs it before
 * returning: a checkpoint is committed only after every file is durable.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata: Record<string, string> = {},
  options: WriteOptions = {},
): Promise<WrittenFile> {
  const chunkBytes = positiveInteger(options.chunkBytes ?? WRITE_CHUNK_BYTES, 'chunkBytes');
  const flushBytes = positiveInteger(options.flushBytes ?? FLUSH_EVERY_BYTES, 'flushBytes');
  const header = encodeHeader(tensors, metadata);
  const handle = await open(path, 'w');
  const writer = new HashingWriter(handle, chunkBytes, flushBytes, options.overlap ?? true);
  try {
    await writer.write(header);
    for (const t of tensors) await writer.write(bytesOf(t.data));
    await writer.sync();
  } finally {
    await writer.settled();
    await handle.close();
  }
  const bytes = header.byteLength + tensors.reduce((a, t) => a + t.data.byteLength, 0);
  return { bytes, sha256: writer.hash.digest('hex') };
}

/** Reads and checks the header: every entry in bounds, contiguous, and the file long enough. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size < 8) throw new Error(`${path}: not a safetensors file (${size} bytes)`);
    const lengthBuf = Buffer.alloc(8);
    await handle.read(lengthBuf, 0, 8, 0);
    const headerLength = Number(lengthBuf.readBigUInt64LE(0));
    if (headerLength > size - 8 || headerLength > 100 * 1024 * 1024) {
      throw new Error(`${path}: header length ${headerLength} exceeds the file (${size} bytes)`);
    }
    const json = Buffer.alloc(headerLength);
    await handle.read(json, 0, headerLength, 8);
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${path}: header is not JSON (${(err as Error).message})`);
    }
    const dataStart = 8 + headerLength;
    const tensors = new Map<string, TensorEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(parsed)) {
      if (name === '__metadata__') {
        metadata = value as Record<string, string>;
        continue;
      }
      const v = value as { dtype: DType; shape: number[]; data_offsets: [number, number] };
      if (!(v.dtype in DTYPE_BYTES)) {
        throw new Error(
          `${path}: tensor '${name}' has dtype ${JSON.stringify(v.dtype)}, which this reader does not know`,
        );
      }
      const [begin, end] = v.data_offsets;
      const need = elementCount(v.shape) * (DTYPE_BYTES[v.dtype] ?? NaN);
      if (!(end - begin === need) || begin < 0 || dataStart + end > size) {
        throw new Error(`${path}: tensor '${name}' is out of bounds or has the wrong size`);
      }
      tensors.set(name, { dtype: v.dtype, shape: v.shape, begin, end });
    }
    return { tensors, metadata, dataStart };
  } finally {
    await handle.close();
  }
}

/** Reads every tensor's bytes (for loading a checkpoint or initial weights). */
export async function readSafetensors(
  path: string,
): Promise<{ header: SafetensorsHeader; tensors: Map<string, Uint8Array> }> {
  const header = await readSafetensorsHeader(path);
  const handle = await open(path, 'r');
  const tensors = new Map<string, Uint8Array>();
  try {
    for (const [name, entry] of header.tensors) {
      const buf = new Uint8Array(entry.end - entry.begin);
      await handle.read(buf, 0, buf.byteLength, header.dataStart + entry.begin);
      tensors.set(name, buf);
    }
  } finally {
    await handle.close();
  }
  return { header, tensors };
}

/** A tensor's bytes as float32 values (copying when the bytes are not 4-aligned). */
export function asFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteOffset % 4 === 0)
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Float32Array(bytes.slice().buffer);
}
