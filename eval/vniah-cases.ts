// V-NIAH cases (LongVA's visual needle in a haystack): NIAH's grid with a haystack of precomputed
// embedding vectors instead of text, for every (context length, depth) one sequence of exactly that
// length:
//
//   BOS · haystack rows [0, k) · needle · haystack rows [k, …) · question · answer
//
// The haystack rows are spliced into the model's input in place of token embeddings; the needle is
// either a block of embeddings (an encoded image that shows the answer, with its question and
// answer as text) or the text passkey needle of NIAH (a random key per case, asked for as NIAH
// asks). The needle goes in at depth × haystack length, on the nearest frame boundary of a
// [frames, tokens_per_frame, hidden] haystack. Spliced tokens carry the pad id (looked up, then
// overwritten) and no label: only the answer is scored, by NIAH's rule (niah-score.ts).
import { RandomStream, Rng } from '../data/random.js';
import { passkeyNeedle } from '../data/synth.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { answerLabels, checkGrid, NIAH_QUESTION, NiahGridError, type NiahCase } from './niah-cases.js';
import type { EmbeddingFile, EmbeddingSpanRef } from './vniah-embeddings.js';

/** The needle: a block of embeddings with its question and answer, or NIAH's text passkey. */
export type VniahNeedle =
  { kind: 'embeddings'; file: EmbeddingFile; question: string; answer: string } | { kind: 'passkey' };

export interface VniahGridOptions {
  contextLengths: number[];
  depths: number[];
  tokenizer: Tokenizer;
  /** The haystack's vectors; a case uses the file's first rows. */
  haystack: EmbeddingFile;
  needle: VniahNeedle;
  /** Seeds the passkeys. */
  seed: number;
  lengthMultiple?: number;
}

/** The file's rows as one span starting at `position`. */
function span(file: EmbeddingFile, position: number, row: number, rows: number): EmbeddingSpanRef {
  return { position, rows, file: file.path, tensor: file.tensor, row };
}

/** Cases of the grid, row-major (context length, then depth); deterministic in the options. */
export function buildVniahCases(o: VniahGridOptions): NiahCase[] {
  checkGrid(o);
  const tok = o.tokenizer;
  const needle = o.needle;
  if (needle.kind === 'embeddings') {
    if (needle.question.trim() === '')
      throw new NiahGridError('question: give the question the needle answers');
    if (needle.answer.trim() === '') throw new NiahGridError('answer: give the answer the needle shows');
  }
  const question = Array.from(
    tok.encode(needle.kind === 'embeddings' ? `\n\n${needle.question}` : NIAH_QUESTION),
  );
  const hay = o.haystack;
  const rng = new Rng(o.seed, RandomStream.niah);
  const cases: NiahCase[] = [];
  for (const contextLength of o.contextLengths) {
    for (const depth of o.depths) {
      let key: string;
      let needleTokens: number[] = [];
      let needleRows = 0;
      if (needle.kind === 'embeddings') {
        key = needle.answer;
        needleRows = needle.file.rows;
      } else {
        key = String(rng.range(10000, 99999));
        needleTokens = Array.from(tok.encode(passkeyNeedle(key)));
      }
      const answer = Array.from(tok.encode(key));
      const fixed = 1 + needleTokens.length + needleRows + question.length + answer.length;
      const haystackRows = contextLength - fixed;
      if (haystackRows < 0) {
        throw new NiahGridError(
          `context lengths: ${contextLength} is too short: BOS, needle, question and answer take ${fixed} tokens`,
        );
      }
      if (haystackRows > hay.rows) {
        throw new NiahGridError(
          `haystack ${hay.path}: tensor '${hay.tensor}' has ${hay.rows} rows, a case of ${contextLength} tokens needs ${haystackRows}`,
        );
      }
      // The nearest frame boundary; the haystack's end is one too (a case may end mid-frame).
      const target = depth * haystackRows;
      const onFrame = Math.round(target / hay.tokensPerFrame) * hay.tokensPerFrame;
      const k =
        onFrame > haystackRows || haystackRows - target <= Math.abs(onFrame - target)
          ? haystackRows
          : onFrame;
      const needleStart = 1 + k;
      const afterNeedle = needleStart + needleTokens.length + needleRows;
      const pad = tok.specials.pad;
      const ids = Int32Array.from([
        tok.specials.bos,
        ...new Array<number>(k).fill(pad),
        ...(needleRows > 0 ? new Array<number>(needleRows).fill(pad) : needleTokens),
        ...new Array<number>(haystackRows - k).fill(pad),
        ...question,
        ...answer,
      ]);
      const embeddings: EmbeddingSpanRef[] = [];
      if (k > 0) embeddings.push(span(hay, 1, 0, k));
      if (needle.kind === 'embeddings') embeddings.push(span(needle.file, needleStart, 0, needleRows));
      if (haystackRows > k) embeddings.push(span(hay, afterNeedle, k, haystackRows - k));
      const answerStart = contextLength - answer.length;
      const labels = answerLabels(ids, answer.length);
      cases.push({
        contextLength,
        depth,
        key,
        ids,
        labels,
        needleStart,
        answerStart,
        answerTokens: answer.length,
        embeddings,
      });
    }
  }
  return cases;
}
