// The training-time view of a packed token file: the native reader (worker-native/src/data/
// token_file.h) memory-maps the tokens and hands each rank its zigzag shard of a sequence. This
// module types that part of the addon and opens a file from its index.
import { native } from './native.js';
import type { ZigzagShard } from '../core/zigzag.js';
import { dataPaths, readTokenIndex, tokenPathOf, type TokenIndex } from '../data/index-file.js';

/** One rank's part of one sequence, in its local order (first chunk, then second). */
export interface TokenShard {
  inputIds: Int32Array;
  /** labels[i] is the token after inputIds[i]: the next-token target. */
  labels: Int32Array;
  /** Global positions within the sequence (what RoPE sees). */
  positions: Int32Array;
  /** Completed passes over the file before this sequence (sequence numbers wrap around). */
  epoch: number;
  /** The sequence's index within the file after wrap-around. */
  sequence: number;
}

export interface NativeTokenFile {
  readonly path: string;
  readonly tokens: number;
  readonly vocabSize: number;
  /** floor((tokens - 1) / seqLen): whole (seqLen+1)-token windows in the stream. */
  sequences(seqLen: number): number;
  /** Throws a RangeError when seqLen is not divisible by 2·worldSize or the file is too short. */
  readShard(sequence: number, seqLen: number, rank: number, worldSize: number): TokenShard;
  /** The token at a stream position (for checks; training reads shards). */
  tokenAt(index: number): number;
  /** Unmaps the file; later reads throw. */
  close(): void;
}

export interface DataApi {
  /** Maps a token file that must hold exactly `expectedTokens` tokens, all below `vocabSize`. */
  openTokenFile(tokenPath: string, expectedTokens: number, vocabSize: number): NativeTokenFile;
  /** The C++ zigzag map (worker-native/src/ring/zigzag.h), same shape as zigzag.ts's zigzagPlan. */
  zigzagPlan(seqLen: number, worldSize: number): ZigzagShard[];
}

declare module './native.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface NativeAddon extends DataApi {}
}

export interface TokenFile extends NativeTokenFile {
  readonly index: TokenIndex;
  readonly indexPath: string;
}

/**
 * Opens a packed token file for training from either its index or its token path; the index
 * supplies the token count (checked against the file size) and the vocabulary bound.
 */
export async function openTokenFile(indexOrTokenPath: string): Promise<TokenFile> {
  const { indexPath } = dataPaths(indexOrTokenPath);
  const index = await readTokenIndex(indexPath);
  const file = native().openTokenFile(tokenPathOf(indexPath, index), index.tokens, index.tokenizer.vocabSize);
  return Object.assign(file, { index, indexPath });
}
