// `pack`: documents → one token stream, the way the LongVA text stage feeds Qwen2 at 224K context.
// Every document is tokenized, optionally thinned (short documents kept with probability p, long
// ones always: the length upsampling that turns SlimPajama into a long-context mix), shuffled by
// seed, and written as one stream with a BOS before each document. Training later cuts the stream
// into fixed windows regardless of document boundaries, so nothing is padded or wasted.
//
// Two passes keep memory flat: the first tokenizes each document once and appends the kept ones
// to a scratch file beside the output (remembering only offset and length per document); the
// second copies them from there in shuffled order into the token file, hashing as it goes. The
// output appears under its final name only when complete.
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { DataInputError, expandInputs, readDocuments } from './documents.js';
import {
  TOKEN_INDEX_FORMAT,
  TOKEN_INDEX_VERSION,
  indexPathFor,
  type SourceRecord,
  type TokenIndex,
} from './index-file.js';
import { RandomStream, Rng } from './random.js';
import { ByteTokenizer, describeTokenizer, type Tokenizer } from './tokenizer.js';
import { TokenWriter } from './token-writer.js';

export interface UpsampleOptions {
  /** Documents with fewer tokens than this are the "short" ones. */
  threshold: number;
  /** Probability of keeping a short document. */
  keepProb: number;
}

export interface PackOptions {
  /** JSONL files, text files, or folders of them, read in this order. */
  inputs: readonly string[];
  /** The token file to write, or a folder (then `tokens.bin` in it). The index goes beside it. */
  out: string;
  seed?: number;
  upsample?: UpsampleOptions | null;
  tokenizer?: Tokenizer;
  /** Called after each input file of the first pass. */
  onProgress?: (p: { file: string; filesDone: number; files: number; documents: number }) => void;
}

export interface PackResult {
  tokenPath: string;
  indexPath: string;
  index: TokenIndex;
}

export const DEFAULT_TOKEN_FILE = 'tokens.bin';

/** Where `--out` puts the token file: into a folder when it is one (or ends with a slash). */
export async function resolveOutput(out: string): Promise<{ tokenPath: string; indexPath: string }> {
  if (out === '') throw new DataInputError('--out must name a file or a folder');
  let isDir = out.endsWith('/');
  if (!isDir) {
    try {
      isDir = (await stat(out)).isDirectory();
    } catch {
      isDir = false;
    }
  }
  const tokenPath = isDir ? join(out, DEFAULT_TOKEN_FILE) : out;
  return { tokenPath, indexPath: indexPathFor(tokenPath) };
}

export function checkPackOptions(options: PackOptions): void {
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  const up = options.upsample;
  if (up) {
    if (!Number.isSafeInteger(up.threshold) || up.threshold < 1) {
      throw new RangeError(`upsample threshold must be a positive number of tokens, got ${up.threshold}`);
    }
    if (!(up.keepProb >= 0 && up.keepProb <= 1)) {
      throw new RangeError(`keep probability must be between 0 and 1, got ${up.keepProb}`);
    }
  }
}

export async function pack(options: PackOptions): Promise<PackResult> {
  checkPackOptions(options);
  const seed = options.seed ?? 0;
  const tokenizer = options.tokenizer ?? new ByteTokenizer();
  const upsample = options.upsample ?? null;
  const files = await expandInputs(options.inputs);
  const { tokenPath, indexPath } = await resolveOutput(options.out);
  await mkdir(dirname(tokenPath), { recursive: true });

  const scratch = `${tokenPath}.pack-${process.pid}.tmp`;
  const partial = `${tokenPath}.${process.pid}.tmp`;
  try {
    // Pass 1: tokenize; keep or drop; append kept documents to the scratch file.
    const spill = await TokenWriter.create(scratch);
    const offsets: number[] = [];
    const lengths: number[] = [];
    const keepRng = new Rng(seed, RandomStream.upsample);
    const sources: SourceRecord[] = [];
    let read = 0;
    let dropped = 0;
    let empty = 0;
    try {
      for (const [i, file] of files.entries()) {
        let documents = 0;
        for await (const doc of readDocuments(file)) {
          documents++;
          const ids = tokenizer.encode(doc.text);
          if (ids.length === 0) {
            empty++;
            continue;
          }
          read++;
          // One draw per document whatever its length, so a document's fate depends only on its
          // position in the input and the seed.
          const draw = keepRng.float();
          if (upsample && ids.length < upsample.threshold && !(draw < upsample.keepProb)) {
            dropped++;
            continue;
          }
          offsets.push(spill.tokens);
          lengths.push(ids.length);
          await spill.writeTokens(ids);
        }
        sources.push({ path: file.path, bytes: file.bytes, documents });
        options.onProgress?.({
          file: file.path,
          filesDone: i + 1,
          files: files.length,
          documents: read + empty,
        });
      }
    } finally {
      await spill.close({ sync: false });
    }
    if (read === 0) {
      throw new DataInputError(
        `the inputs hold no non-empty documents (${files.map((f) => f.path).join(', ')})`,
      );
    }
    if (offsets.length === 0) {
      throw new DataInputError(
        `upsampling dropped all ${read} documents (all shorter than ${upsample?.threshold} tokens): raise --keep-prob or lower --upsample-threshold`,
      );
    }

    // Pass 2: shuffle the kept documents and write them out, each behind a BOS.
    const order = new Rng(seed, RandomStream.shuffle).shuffle(Uint32Array.from(offsets.keys()));
    const out = await TokenWriter.create(partial, { sha256: true });
    const source = await open(scratch, 'r');
    let sha256: string | null;
    let tokens: number;
    try {
      const buffer = Buffer.alloc(1 << 20);
      for (const k of order) {
        await out.writeToken(tokenizer.specials.bos);
        let position = offsets[k]! * 4;
        let remaining = lengths[k]! * 4;
        while (remaining > 0) {
          const want = Math.min(remaining, buffer.length);
          const { bytesRead } = await source.read(buffer, 0, want, position);
          if (bytesRead !== want) throw new Error(`scratch file ${scratch} ended early at byte ${position}`);
          await out.writeBytes(buffer.subarray(0, want));
          position += want;
          remaining -= want;
        }
      }
      ({ tokens, sha256 } = await out.close());
    } catch (e) {
      await out.abandon();
      throw e;
    } finally {
      await source.close();
    }

    const index: TokenIndex = {
      format: TOKEN_INDEX_FORMAT,
      version: TOKEN_INDEX_VERSION,
      tokenFile: basename(tokenPath),
      dtype: 'uint32',
      byteOrder: 'little',
      separator: 'bos-before-each-document',
      tokens,
      tokenizer: describeTokenizer(tokenizer),
      documents: { read, kept: offsets.length, dropped, empty },
      sources,
      seed,
      options: {
        upsampleThreshold: upsample?.threshold ?? null,
        keepProb: upsample?.keepProb ?? null,
      },
      sha256: sha256!,
    };
    // A stale index must not sit beside the new token file, even for a moment.
    await rm(indexPath, { force: true });
    await rename(partial, tokenPath);
    const indexPartial = `${indexPath}.${process.pid}.tmp`;
    await writeFile(indexPartial, JSON.stringify(index, null, 2) + '\n');
    await rename(indexPartial, indexPath);
    return { tokenPath, indexPath, index };
  } finally {
    await rm(scratch, { force: true });
    await rm(partial, { force: true });
  }
}
