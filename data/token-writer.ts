// Streams uint32 tokens to a file through one fixed buffer, so packing a corpus of any size needs
// memory for a buffer and a document, not for the stream; optionally hashes what it writes.
import { createHash, type Hash } from 'node:crypto';
import { endianness } from 'node:os';
import { open, type FileHandle } from 'node:fs/promises';

const BUFFER_BYTES = 1 << 20;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

export class TokenWriter {
  private readonly buffer = Buffer.alloc(BUFFER_BYTES);
  private used = 0;
  private written = 0;
  private readonly hash: Hash | null;

  private constructor(
    private readonly file: FileHandle,
    withHash: boolean,
  ) {
    this.hash = withHash ? createHash('sha256') : null;
  }

  /** Creates (or truncates) `path`. */
  static async create(path: string, options: { sha256?: boolean } = {}): Promise<TokenWriter> {
    return new TokenWriter(await open(path, 'w'), options.sha256 ?? false);
  }

  /** Tokens written so far (including those still buffered). */
  get tokens(): number {
    return (this.written + this.used) / 4;
  }

  async writeToken(id: number): Promise<void> {
    if (this.used + 4 > BUFFER_BYTES) await this.flush();
    this.buffer.writeUInt32LE(id, this.used);
    this.used += 4;
  }

  async writeTokens(ids: Uint32Array): Promise<void> {
    const bytes = Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength);
    if (LITTLE_ENDIAN_HOST) return this.writeBytes(bytes);
    return this.writeBytes(Buffer.from(bytes).swap32());
  }

  /** Raw little-endian token bytes (a whole number of tokens). */
  async writeBytes(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      if (this.used === BUFFER_BYTES) await this.flush();
      const n = Math.min(bytes.length - offset, BUFFER_BYTES - this.used);
      this.buffer.set(bytes.subarray(offset, offset + n), this.used);
      this.used += n;
      offset += n;
    }
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = this.buffer.subarray(0, this.used);
    this.hash?.update(chunk);
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await this.file.write(chunk, done, chunk.length - done);
      done += bytesWritten;
    }
    this.written += this.used;
    this.used = 0;
  }

  /** Flushes, fsyncs (unless told not to: a scratch file) and closes; the sha256 when hashing. */
  async close(options: { sync?: boolean } = {}): Promise<{ tokens: number; sha256: string | null }> {
    await this.flush();
    if (options.sync ?? true) await this.file.sync();
    await this.file.close();
    return { tokens: this.written / 4, sha256: this.hash ? this.hash.digest('hex') : null };
  }

  /** Closes without flushing (after a failure). */
  async abandon(): Promise<void> {
    await this.file.close().catch(() => undefined);
  }
}
