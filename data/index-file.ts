// The JSON index that sits next to every packed token file. It says how to read the tokens
// (dtype, byte order, count, tokenizer and its special ids) and where they came from (sources,
// seed, options), and carries the token file's sha256 so a copy can be verified. The C++ reader
// takes the token count and vocabulary size from it, so a truncated or foreign file fails before
// a single step runs.
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';

import type { TokenizerDescriptor } from './tokenizer.js';

export const TOKEN_INDEX_FORMAT = 'longctx-tokens';
export const TOKEN_INDEX_VERSION = 1;

export interface SourceRecord {
  /** The path as given to `pack` (directories expanded). */
  path: string;
  bytes: number;
  /** Documents read from it (before upsampling). */
  documents: number;
}

export interface TokenIndex {
  format: typeof TOKEN_INDEX_FORMAT;
  version: number;
  /** The token file's name, in the index's own folder. */
  tokenFile: string;
  dtype: 'uint32';
  byteOrder: 'little';
  /** What separates documents in the stream. */
  separator: 'bos-before-each-document';
  tokens: number;
  tokenizer: TokenizerDescriptor;
  documents: {
    /** Non-empty documents read from the sources. */
    read: number;
    kept: number;
    /** Dropped by upsampling (short and not drawn). */
    dropped: number;
    /** Empty texts, skipped. */
    empty: number;
  };
  sources: SourceRecord[];
  seed: number;
  options: {
    /** Documents with fewer tokens than this were kept with probability keepProb; null: all kept. */
    upsampleThreshold: number | null;
    keepProb: number | null;
  };
  sha256: string;
}

/** `corpus.bin` → `corpus.index.json`; any other name gets `.index.json` appended. */
export function indexPathFor(tokenPath: string): string {
  return extname(tokenPath) === '.bin' ? tokenPath.slice(0, -4) + '.index.json' : tokenPath + '.index.json';
}

export interface DataPaths {
  indexPath: string;
  /** Known only after the index has been read when an index path was given. */
  tokenPath: string | null;
}

/** Accepts either file of a pair: a `.json` path is the index, anything else the token file. */
export function dataPaths(indexOrTokenPath: string): DataPaths {
  if (indexOrTokenPath.endsWith('.json')) return { indexPath: indexOrTokenPath, tokenPath: null };
  return { indexPath: indexPathFor(indexOrTokenPath), tokenPath: indexOrTokenPath };
}

export function tokenPathOf(indexPath: string, index: TokenIndex): string {
  return join(dirname(indexPath), index.tokenFile);
}

export class TokenIndexError extends Error {
  override name = 'TokenIndexError';
}

/** Reads and checks an index; every problem is a TokenIndexError naming the file and the field. */
export async function readTokenIndex(indexPath: string): Promise<TokenIndex> {
  let text: string;
  try {
    text = await readFile(indexPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new TokenIndexError(
        `token index ${indexPath} does not exist (pack the data with 'longctx data pack' first)`,
      );
    }
    throw new TokenIndexError(`cannot read token index ${indexPath}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TokenIndexError(`token index ${indexPath} is not valid JSON: ${(e as Error).message}`);
  }
  return checkTokenIndex(value, indexPath);
}

export function checkTokenIndex(value: unknown, where: string): TokenIndex {
  const fail = (field: string, why: string): never => {
    throw new TokenIndexError(`token index ${where}: ${field} ${why}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail('the file', 'is not a JSON object');
  const o = value as Record<string, unknown>;
  if (o.format !== TOKEN_INDEX_FORMAT)
    fail('format', `must be '${TOKEN_INDEX_FORMAT}', got ${JSON.stringify(o.format)}`);
  if (o.version !== TOKEN_INDEX_VERSION) {
    fail(
      'version',
      `${JSON.stringify(o.version)} is not supported (this build reads version ${TOKEN_INDEX_VERSION})`,
    );
  }
  if (typeof o.tokenFile !== 'string' || o.tokenFile === '' || basename(o.tokenFile) !== o.tokenFile) {
    fail('tokenFile', 'must be a file name in the index folder');
  }
  if (o.dtype !== 'uint32') fail('dtype', `must be 'uint32', got ${JSON.stringify(o.dtype)}`);
  if (o.byteOrder !== 'little') fail('byteOrder', `must be 'little', got ${JSON.stringify(o.byteOrder)}`);
  if (!Number.isSafeInteger(o.tokens) || (o.tokens as number) < 0)
    fail('tokens', 'must be a non-negative integer');
  const t = o.tokenizer as Record<string, unknown> | undefined;
  if (typeof t !== 'object' || t === null) fail('tokenizer', 'is missing');
  const tok = t as Record<string, unknown>;
  if (typeof tok.name !== 'string') fail('tokenizer.name', 'must be a string');
  if (!Number.isSafeInteger(tok.vocabSize) || (tok.vocabSize as number) < 1) {
    fail('tokenizer.vocabSize', 'must be a positive integer');
  }
  const specials = tok.specials as Record<string, unknown> | undefined;
  for (const k of ['bos', 'eos', 'pad']) {
    const id = specials?.[k];
    if (!Number.isSafeInteger(id) || (id as number) < 0 || (id as number) >= (tok.vocabSize as number)) {
      fail(`tokenizer.specials.${k}`, 'must be an id below the vocab size');
    }
  }
  if (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256))
    fail('sha256', 'must be 64 hex digits');
  return value as TokenIndex;
}
