// Shared helpers for the data tests: private temp folders, hand-made token files, raw reads.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { ExecutionContext } from 'ava';

import {
  TOKEN_INDEX_FORMAT,
  TOKEN_INDEX_VERSION,
  indexPathFor,
  type TokenIndex,
} from '../../data/index-file.js';
import { ByteTokenizer, describeTokenizer } from '../../data/tokenizer.js';

/** A temp folder removed when the test ends. */
export function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'longctx-data-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** All tokens of a token file, read with plain Node (the reference for the native reader). */
export function readTokens(path: string): Uint32Array {
  const bytes = readFileSync(path);
  const out = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readUInt32LE(i * 4);
  return out;
}

/** Writes `ids` as a token file with a valid index (byte tokenizer unless told otherwise). */
export function writeTokenFile(
  dir: string,
  name: string,
  ids: ArrayLike<number>,
  vocabSize = 259,
): { tokenPath: string; indexPath: string } {
  const tokenPath = join(dir, name);
  const bytes = Buffer.alloc(ids.length * 4);
  for (let i = 0; i < ids.length; i++) bytes.writeUInt32LE(ids[i]!, i * 4);
  writeFileSync(tokenPath, bytes);
  const index: TokenIndex = {
    format: TOKEN_INDEX_FORMAT,
    version: TOKEN_INDEX_VERSION,
    tokenFile: name,
    dtype: 'uint32',
    byteOrder: 'little',
    separator: 'bos-before-each-document',
    tokens: ids.length,
    tokenizer: { ...describeTokenizer(new ByteTokenizer()), vocabSize },
    documents: { read: 1, kept: 1, dropped: 0, empty: 0 },
    sources: [],
    seed: 0,
    options: { upsampleThreshold: null, keepProb: null },
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
  const indexPath = indexPathFor(tokenPath);
  writeFileSync(indexPath, JSON.stringify(index));
  return { tokenPath, indexPath };
}

/** Splits a packed stream at its BOS tokens; checks the stream starts with one. */
export function splitDocuments(stream: Uint32Array, bos: number): Uint32Array[] {
  const docs: Uint32Array[] = [];
  let start = -1;
  for (let i = 0; i <= stream.length; i++) {
    if (i === stream.length || stream[i] === bos) {
      if (start >= 0) docs.push(stream.subarray(start + 1, i));
      else if (i !== 0 && i !== stream.length) throw new Error('stream does not start with BOS');
      start = i;
    }
  }
  return docs;
}
