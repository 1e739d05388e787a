// `synth`: an offline corpus for demos and tests, in the JSONL shape `pack` reads.
//
// Two kinds of document. Filler: readable pseudo-English sentences from a small word list, of
// lengths spread log-uniformly over a range (many short, a few long, like real web text). Passkey:
// the retrieval task LongVA and Landmark Attention test long context with — a 5-digit key hidden
// at a random depth inside filler and asked for at the very end. A model can only predict the
// final answer by attending back to the needle, so training on these makes long-range retrieval
// learnable and gives a measurable signal at small scale. Optionally a third kind, key lists: many
// 5-digit keys, then the same keys again — nearly every token of the repeat is copied from context,
// a dense signal for the copying that passkey retrieval needs (a passkey document has ten such
// tokens in hundreds).
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';

import { RandomStream, Rng } from './random.js';

const DETERMINERS = ['the', 'a', 'every', 'one', 'that', 'this', 'no', 'some'];
// prettier-ignore
const ADJECTIVES = [
  'quiet', 'old', 'small', 'bright', 'green', 'heavy', 'distant', 'warm', 'narrow', 'simple', 'early', 'late',
  'broken', 'careful', 'golden', 'hidden', 'patient', 'strange', 'gentle', 'empty', 'busy', 'silver', 'open', 'cold',
];
// prettier-ignore
const NOUNS = [
  'river', 'stone', 'garden', 'teacher', 'window', 'village', 'road', 'letter', 'market', 'bird', 'field', 'lamp',
  'bridge', 'child', 'engine', 'forest', 'harbor', 'island', 'kitchen', 'ladder', 'mountain', 'painter', 'question',
  'station', 'tower', 'valley', 'wagon', 'winter', 'farmer', 'clock', 'story', 'library', 'boat', 'city', 'song',
];
// prettier-ignore
const VERBS = [
  'carries', 'finds', 'watches', 'follows', 'builds', 'remembers', 'opens', 'crosses', 'paints', 'answers',
  'gathers', 'reaches', 'keeps', 'moves', 'leaves', 'visits', 'counts', 'holds', 'teaches', 'closes',
];
// prettier-ignore
const PREPOSITIONS = [
  'across', 'near', 'under', 'behind', 'beyond', 'along', 'inside', 'above', 'toward', 'past',
];
const CONNECTIVES = ['and', 'but', 'while', 'because', 'so'];

/** The introduction, needle and question of a passkey document (LongVA's wording). */
export const PASSKEY_INTRO =
  'There is an important piece of information hidden inside a lot of irrelevant text. ' +
  'Find it and memorize it. I will quiz you about it.\n\n';
export const PASSKEY_QUESTION = 'What is the pass key?';
export const passkeyNeedle = (key: string): string =>
  `The pass key is ${key}. Remember it. ${key} is the pass key. `;
export const passkeyEnding = (key: string): string => `\n\n${PASSKEY_QUESTION} The pass key is ${key}.`;

export interface SynthOptions {
  /** Stop after this many documents (default 1000 when `bytes` is not given either). */
  docs?: number;
  /** Stop after the document that brings the total text to this many bytes. */
  bytes?: number;
  /** Share of passkey documents, spread evenly: document i is one when ⌊(i+1)f⌋ > ⌊if⌋. */
  passkeyFraction?: number;
  /** Share of key-list documents (default 0), drawn at random among the non-passkey ones. */
  keyListFraction?: number;
  /** Target length range in characters; a document ends at the first sentence end past its target. */
  minChars?: number;
  maxChars?: number;
  seed?: number;
}

export type SynthDocument =
  | { kind: 'filler'; text: string }
  | { kind: 'key-list'; text: string; keys: string[] }
  | {
      kind: 'passkey';
      text: string;
      passkey: string;
      /** The drawn depth in [0, 1]: where in the document the needle was asked to go. */
      depth: number;
      /** Character (= byte: the text is ASCII) offset of the needle in `text`. */
      needleOffset: number;
    };

export const SYNTH_DEFAULTS = {
  docs: 1000,
  passkeyFraction: 0.25,
  keyListFraction: 0,
  minChars: 256,
  maxChars: 16384,
  seed: 0,
};

interface ResolvedSynthOptions {
  docs: number;
  bytes: number;
  passkeyFraction: number;
  keyListFraction: number;
  minChars: number;
  maxChars: number;
  seed: number;
}

export function resolveSynthOptions(options: SynthOptions): ResolvedSynthOptions {
  const positiveInt = (value: number, name: string) => {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new RangeError(`${name} must be a positive integer, got ${value}`);
  };
  const unlimited = Number.POSITIVE_INFINITY;
  const docs = options.docs ?? (options.bytes === undefined ? SYNTH_DEFAULTS.docs : unlimited);
  const bytes = options.bytes ?? unlimited;
  if (docs !== unlimited) positiveInt(docs, 'docs');
  if (bytes !== unlimited) positiveInt(bytes, 'bytes');
  const passkeyFraction = options.passkeyFraction ?? SYNTH_DEFAULTS.passkeyFraction;
  if (!(passkeyFraction >= 0 && passkeyFraction <= 1)) {
    throw new RangeError(`passkey fraction must be between 0 and 1, got ${passkeyFraction}`);
  }
  const keyListFraction = options.keyListFraction ?? SYNTH_DEFAULTS.keyListFraction;
  if (!(keyListFraction >= 0 && keyListFraction <= 1 - passkeyFraction + 1e-12)) {
    throw new RangeError(
      `key-list fraction must be between 0 and 1 - passkey fraction (${1 - passkeyFraction}), got ${keyListFraction}`,
    );
  }
  const minChars = options.minChars ?? SYNTH_DEFAULTS.minChars;
  const maxChars = options.maxChars ?? Math.max(SYNTH_DEFAULTS.maxChars, minChars);
  positiveInt(minChars, 'min chars');
  positiveInt(maxChars, 'max chars');
  if (maxChars < minChars) throw new RangeError(`max chars ${maxChars} is below min chars ${minChars}`);
  const seed = options.seed ?? SYNTH_DEFAULTS.seed;
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  return { docs, bytes, passkeyFraction, keyListFraction, minChars, maxChars, seed };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function nounPhrase(rng: Rng): string {
  const determiner = rng.pick(DETERMINERS);
  const rest = (rng.int(2) === 0 ? `${rng.pick(ADJECTIVES)} ` : '') + rng.pick(NOUNS);
  return `${determiner === 'a' && /^[aeiou]/.test(rest) ? 'an' : determiner} ${rest}`;
}

function clause(rng: Rng): string {
  const place = rng.int(2) === 0 ? ` ${rng.pick(PREPOSITIONS)} ${nounPhrase(rng)}` : '';
  return `${nounPhrase(rng)} ${rng.pick(VERBS)} ${nounPhrase(rng)}${place}`;
}

/** One sentence, ending with ". " (a paragraph break now and then). */
export function sentence(rng: Rng): string {
  let s = clause(rng);
  if (rng.int(3) === 0) s += `, ${rng.pick(CONNECTIVES)} ${clause(rng)}`;
  return capitalize(s) + (rng.int(6) === 0 ? '.\n\n' : '. ');
}

const longest = (words: readonly string[]) => Math.max(...words.map((w) => w.length));
const LONGEST_NOUN_PHRASE =
  Math.max(longest(DETERMINERS), 'an'.length) + 1 + longest(ADJECTIVES) + 1 + longest(NOUNS);
const LONGEST_CLAUSE =
  LONGEST_NOUN_PHRASE +
  1 +
  longest(VERBS) +
  1 +
  LONGEST_NOUN_PHRASE +
  1 +
  longest(PREPOSITIONS) +
  1 +
  LONGEST_NOUN_PHRASE;
/** No sentence is longer than this (a passkey needle lands within this many characters of its depth). */
export const MAX_SENTENCE_CHARS =
  LONGEST_CLAUSE + 2 + longest(CONNECTIVES) + 1 + LONGEST_CLAUSE + '.\n\n'.length;

/** Sentences until at least `chars` characters (none for chars <= 0). */
export function fillerSentences(rng: Rng, chars: number): string[] {
  const sentences: string[] = [];
  let length = 0;
  while (length < chars) {
    const s = sentence(rng);
    sentences.push(s);
    length += s.length;
  }
  return sentences;
}

export function fillerText(rng: Rng, chars: number): string {
  return fillerSentences(rng, chars).join('');
}

/** A target length drawn log-uniformly from [min, max]. */
function targetLength(rng: Rng, min: number, max: number): number {
  return Math.round(Math.exp(Math.log(min) + rng.float() * (Math.log(max) - Math.log(min))));
}

/**
 * Needle-in-a-haystack: `depth` is where the needle sits within the filler (the haystack), 0 =
 * right after the introduction, 1 = right before the question. The needle goes in at the sentence
 * boundary nearest depth × haystack length, so it lands within one sentence of the stated depth.
 */
export function passkeyDocument(rng: Rng, target: number): SynthDocument {
  const passkey = String(rng.range(10000, 99999));
  const depth = rng.float();
  const needle = passkeyNeedle(passkey);
  const ending = passkeyEnding(passkey);
  const sentences = fillerSentences(rng, target - PASSKEY_INTRO.length - needle.length - ending.length);
  const haystack = sentences.reduce((n, s) => n + s.length, 0);
  let split = 0;
  let before = 0;
  for (let k = 0; k < sentences.length; k++) {
    const next = before + sentences[k]!.length;
    if (Math.abs(next - depth * haystack) >= Math.abs(before - depth * haystack)) break;
    before = next;
    split = k + 1;
  }
  const body = sentences.slice(0, split).join('') + needle + sentences.slice(split).join('');
  const text = PASSKEY_INTRO + body.trimEnd() + ending;
  return { kind: 'passkey', text, passkey, depth, needleOffset: PASSKEY_INTRO.length + before };
}

/** A key list of about `target` characters: the keys, then the same keys in the same order. */
export function keyListDocument(rng: Rng, target: number): SynthDocument {
  // Each key costs about 2 × 7 characters ("12345, " twice) beyond the two short lead-ins.
  const count = Math.max(2, Math.round((target - 48) / 14));
  const keys = Array.from({ length: count }, () => String(rng.range(10000, 99999)));
  const list = keys.join(', ');
  return { kind: 'key-list', text: `The pass keys are ${list}.\nAgain, the pass keys are ${list}.`, keys };
}

/** The corpus, one document at a time (deterministic in the options). */
export function* synthDocuments(options: SynthOptions = {}): Generator<SynthDocument> {
  const o = resolveSynthOptions(options);
  const rng = new Rng(o.seed, RandomStream.synth);
  let bytes = 0;
  for (let i = 0; i < o.docs && bytes < o.bytes; i++) {
    const isPasskey = Math.floor((i + 1) * o.passkeyFraction) > Math.floor(i * o.passkeyFraction);
    const target = targetLength(rng, o.minChars, o.maxChars);
    // Drawn only when asked for, so corpora without key lists keep their random stream.
    const isKeyList =
      !isPasskey && o.keyListFraction > 0 && rng.float() < o.keyListFraction / (1 - o.passkeyFraction);
    const doc: SynthDocument = isPasskey
      ? passkeyDocument(rng, target)
      : isKeyList
        ? keyListDocument(rng, target)
        : { kind: 'filler', text: fillerText(rng, target).trimEnd() };
    bytes += doc.text.length;
    yield doc;
  }
}

export interface SynthResult {
  path: string;
  documents: number;
  passkeyDocuments: number;
  /** Bytes of document text (the JSONL file is a little larger). */
  textBytes: number;
  fileBytes: number;
}

/** Writes the corpus as JSONL to `out` (created whole or not at all). */
export async function synth(out: string, options: SynthOptions = {}): Promise<SynthResult> {
  resolveSynthOptions(options); // fail on bad options before touching the disk
  await mkdir(dirname(out), { recursive: true });
  const partial = `${out}.${process.pid}.tmp`;
  const stream = createWriteStream(partial);
  const result: SynthResult = { path: out, documents: 0, passkeyDocuments: 0, textBytes: 0, fileBytes: 0 };
  try {
    for (const doc of synthDocuments(options)) {
      const line = JSON.stringify(doc) + '\n';
      result.documents++;
      if (doc.kind === 'passkey') result.passkeyDocuments++;
      result.textBytes += doc.text.length;
      result.fileBytes += Buffer.byteLength(line);
      if (!stream.write(line)) await once(stream, 'drain');
    }
    stream.end();
    await once(stream, 'close');
    await rename(partial, out);
    return result;
  } catch (e) {
    stream.destroy();
    await rm(partial, { force: true });
    throw e;
  }
}
