// Needle-in-a-haystack cases: for every (context length, depth) of the grid, one token sequence of
// exactly that length:
//
//   BOS · intro · haystack[0, k) · needle(key) · haystack[k, …) · question · key
//
// with the wording of data/synth.ts's passkey documents (LongVA's), so a model trained on that
// corpus is asked what it learned. The needle goes in at depth × haystack length (at the nearest
// sentence boundary for a generated haystack); the labels are -100 everywhere except at the
// positions that predict the key's tokens, so evaluate() scores exactly the answer. Each piece is
// tokenized on its own, as LongVA's evaluation does, so the key's tokens are the same in the needle
// and in the answer whatever the tokenizer.
import { RandomStream, Rng } from '../data/random.js';
import { PASSKEY_INTRO, PASSKEY_QUESTION, passkeyNeedle, sentence } from '../data/synth.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { EmbeddingSpanRef } from './vniah-embeddings.js';

export const IGNORE_INDEX = -100;

/** Where the haystack comes from. */
export type Haystack =
  /** Pseudo-English filler sentences from this seed (data/synth.ts's generator). */
  | { kind: 'generated'; seed: number }
  /** Tokens of a packed token file (from its start), e.g. real text packed with `data pack`. */
  | { kind: 'tokens'; tokens: ArrayLike<number>; source: string };

export interface NiahGridOptions {
  contextLengths: number[];
  /** In [0, 1]: 0 puts the needle at the start of the haystack, 1 at its end. */
  depths: number[];
  tokenizer: Tokenizer;
  haystack: Haystack;
  /** Seeds the keys (5-digit numbers, one per case). */
  seed: number;
  /** Every context length must be a multiple of this (2 × ranks for the zigzag ring). */
  lengthMultiple?: number;
}

export interface NiahCase {
  contextLength: number;
  depth: number;
  key: string;
  /** The whole sequence, answer included. */
  ids: Int32Array;
  /** labels[t] is ids[t + 1] where that token is part of the answer, else -100. */
  labels: Int32Array;
  needleStart: number;
  answerStart: number;
  answerTokens: number;
  /** V-NIAH (vniah-cases.ts): spans whose tokens are rows of embedding files, not token embeddings. */
  embeddings?: EmbeddingSpanRef[];
}

export class NiahGridError extends Error {
  override name = 'NiahGridError';
}

/** The question before the answer; ends with a space so the key follows as in the training text. */
export const NIAH_QUESTION = `\n\n${PASSKEY_QUESTION} The pass key is `;

/** Throws NiahGridError naming the field of a grid that cannot be built (shared with V-NIAH's). */
export function checkGrid(
  o: Pick<NiahGridOptions, 'contextLengths' | 'depths' | 'seed' | 'lengthMultiple'>,
): void {
  const fail = (field: string, why: string): never => {
    throw new NiahGridError(`${field}: ${why}`);
  };
  if (o.contextLengths.length === 0) fail('context lengths', 'give at least one');
  if (o.depths.length === 0) fail('depths', 'give at least one');
  const multiple = o.lengthMultiple ?? 2;
  for (const length of o.contextLengths) {
    if (!Number.isSafeInteger(length) || length <= 0)
      fail('context lengths', `${length} is not a positive integer`);
    if (length % multiple !== 0) {
      fail(
        'context lengths',
        `${length} is not a multiple of ${multiple} (2 × ranks: the zigzag ring cuts it in equal chunks)`,
      );
    }
  }
  for (const depth of o.depths) {
    if (!(depth >= 0 && depth <= 1)) fail('depths', `${depth} is outside 0..1`);
  }
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) fail('seed', `${o.seed} is not a non-negative integer`);
}

/**
 * Labels that score only the answer, the last `answerTokens` of `ids` (shared with V-NIAH's): the
 * positions that predict its tokens hold them, every other position -100.
 */
export function answerLabels(ids: Int32Array, answerTokens: number): Int32Array {
  const labels = new Int32Array(ids.length).fill(IGNORE_INDEX);
  for (let t = ids.length - answerTokens - 1; t < ids.length - 1; t++) labels[t] = ids[t + 1]!;
  return labels;
}

/** Haystack tokens and the token offsets where a new sentence starts (for generated text). */
interface HaystackTokens {
  ids: number[];
  /** Offsets the needle may go in at: every sentence start, or null (any token) for a token file. */
  boundaries: number[] | null;
}

function haystackTokens(haystack: Haystack, tokenizer: Tokenizer, length: number): HaystackTokens {
  if (haystack.kind === 'tokens') {
    // At most `length`: a short file is only an error for the cases that need more (see below).
    const ids = Array.from(
      { length: Math.min(length, haystack.tokens.length) },
      (_, i) => haystack.tokens[i]!,
    );
    return { ids, boundaries: null };
  }
  // The same filler for every case (one seed), cut to length: cases differ only by the needle.
  const rng = new Rng(haystack.seed, RandomStream.synth);
  const ids: number[] = [];
  const boundaries: number[] = [];
  while (ids.length < length) {
    boundaries.push(ids.length);
    for (const id of tokenizer.encode(sentence(rng))) ids.push(id);
  }
  ids.length = length;
  return { ids, boundaries };
}

/** The insertion offset nearest depth × length (the haystack's first `length` tokens), on a boundary when there are boundaries. */
function insertionPoint(depth: number, length: number, boundaries: number[] | null): number {
  const target = Math.round(depth * length);
  if (!boundaries) return target;
  let best = length; // the haystack's end is always a boundary
  for (const b of boundaries) {
    if (b > length) break;
    if (Math.abs(b - target) < Math.abs(best - target)) best = b;
  }
  return best;
}

/** The whole grid, row-major (context length, then depth); deterministic in the options. */
export function buildNiahCases(o: NiahGridOptions): NiahCase[] {
  checkGrid(o);
  const tok = o.tokenizer;
  const prefix = [tok.specials.bos, ...tok.encode(PASSKEY_INTRO)];
  const question = Array.from(tok.encode(NIAH_QUESTION));
  const rng = new Rng(o.seed, RandomStream.niah);
  // One haystack for the longest case; shorter cases use its beginning.
  const hay = haystackTokens(
    o.haystack,
    tok,
    Math.max(0, Math.max(...o.contextLengths) - prefix.length - question.length),
  );
  const cases: NiahCase[] = [];
  for (const contextLength of o.contextLengths) {
    for (const depth of o.depths) {
      const key = String(rng.range(10000, 99999));
      const needle = Array.from(tok.encode(passkeyNeedle(key)));
      const answer = Array.from(tok.encode(key));
      const fixed = prefix.length + needle.length + question.length + answer.length;
      const haystackLength = contextLength - fixed;
      if (haystackLength < 0) {
        throw new NiahGridError(
          `context lengths: ${contextLength} is too short: intro, needle, question and answer take ${fixed} tokens`,
        );
      }
      if (haystackLength > hay.ids.length) {
        const source = o.haystack.kind === 'tokens' ? o.haystack.source : 'generated';
        throw new NiahGridError(
          `haystack ${source}: has ${hay.ids.length} tokens, a case of ${contextLength} tokens needs ${haystackLength}`,
        );
      }
      const k = insertionPoint(depth, haystackLength, hay.boundaries);
      const ids = Int32Array.from([
        ...prefix,
        ...hay.ids.slice(0, k),
        ...needle,
        ...hay.ids.slice(k, haystackLength),
        ...question,
        ...answer,
      ]);
      const answerStart = contextLength - answer.length;
      const labels = answerLabels(ids, answer.length);
      cases.push({
        contextLength,
        depth,
        key,
        ids,
        labels,
        needleStart: prefix.length + k,
        answerStart,
        answerTokens: answer.length,
      });
    }
  }
  return cases;
}
