// Scoring of needle-in-a-haystack cases, by the seed's rule (LongVA's): a case counts as found
// only when, for every answer token, the argmax of the logits at the position before it is that
// token — what greedy decoding would write, checked in one forward pass over the whole case with
// the answer in place (teacher forcing), so no generation loop and no KV cache are needed.
//
// Ties: a token counts only when its logit is strictly above every other logit. torch.argmax would
// return the lowest tied index, so a tie would score by the order of the vocabulary; the strict
// rule depends on neither that order nor on the order of floating-point reductions (which differs
// between 1 and N ranks, CPU and GPU), and a model that cannot tell tokens apart scores nothing.
// The native cross-entropy applies the same rule (worker-native/src/kernels/cpu/cross_entropy.h).

/** The index of the strictly largest value, or -1 when the maximum is shared (or a NaN is seen). */
export function strictArgmax(row: ArrayLike<number>): number {
  let best = -1;
  let max = -Infinity;
  let tied = false;
  for (let v = 0; v < row.length; v++) {
    const x = row[v]!;
    if (Number.isNaN(x)) return -1;
    if (x > max) {
      max = x;
      best = v;
      tied = false;
    } else if (x === max) {
      tied = true;
    }
  }
  return tied ? -1 : best;
}

/**
 * The reference scorer on explicit logits: `logits[i]` is the row that predicts `answer[i]` (the
 * logits at the position just before it). True only when every answer token is the strict argmax.
 */
export function answerFound(logits: ArrayLike<number>[], answer: readonly number[]): boolean {
  if (logits.length !== answer.length) {
    throw new RangeError(`${logits.length} logit rows for ${answer.length} answer tokens`);
  }
  if (answer.length === 0) throw new RangeError('an answer needs at least one token');
  return answer.every((token, i) => strictArgmax(logits[i]!) === token);
}

/**
 * The same rule on what the trainer's evaluate() returns when only the answer tokens carry labels:
 * found when all `answerTokens` were counted and each one's label was the strict argmax.
 */
export function foundFromCounts(
  counts: { globalTokens: number; globalArgmaxCorrect: number },
  answerTokens: number,
): boolean {
  if (counts.globalTokens !== answerTokens) {
    throw new Error(
      `the evaluation counted ${counts.globalTokens} labelled tokens, the answer has ${answerTokens}`,
    );
  }
  if (counts.globalArgmaxCorrect < 0) {
    throw new Error(
      'this device backend does not count argmax hits (the CUDA cross-entropy): NIAH runs on CPU ranks',
    );
  }
  return counts.globalArgmaxCorrect === answerTokens;
}

/** One evaluated case. */
export interface NiahCaseResult {
  contextLength: number;
  /** The requested depth (0 = needle at the start of the haystack, 1 = at its end). */
  depth: number;
  /** Where the needle actually starts, as a fraction of the context. */
  needlePosition: number;
  key: string;
  found: boolean;
  /** Answer tokens whose label was the strict argmax (found ⇔ answerCorrect = answerTokens). */
  answerCorrect: number;
  answerTokens: number;
  /** Mean cross-entropy of the answer tokens. */
  answerLoss: number;
}

export interface NiahReport {
  contextLengths: number[];
  depths: number[];
  /** Row-major: cells[i * depths.length + j] is context length i at depth j. */
  cells: NiahCaseResult[];
  /** Found cases / all cases. */
  accuracy: number;
  /** Accuracy per context length (averaged over depths). */
  accuracyByLength: number[];
}

export function summarize(contextLengths: number[], depths: number[], cells: NiahCaseResult[]): NiahReport {
  if (cells.length !== contextLengths.length * depths.length) {
    throw new Error(`${cells.length} results for a ${contextLengths.length} × ${depths.length} grid`);
  }
  const rate = (xs: NiahCaseResult[]) => (xs.length === 0 ? 0 : xs.filter((c) => c.found).length / xs.length);
  return {
    contextLengths,
    depths,
    cells,
    accuracy: rate(cells),
    accuracyByLength: contextLengths.map((_, i) =>
      rate(cells.slice(i * depths.length, (i + 1) * depths.length)),
    ),
  };
}
