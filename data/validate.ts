// checkDataFile: the orchestrator's look at a job's data before any rank starts. A missing,
// truncated or too-short file should fail the job in the control plane with a message that says
// what to do, not as a crash on eight ranks a minute into a run.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';

import { dataPaths, readTokenIndex, tokenPathOf, TokenIndexError, type TokenIndex } from './index-file.js';

export interface CheckDataOptions {
  /** Tokens per training sequence (S); a file needs at least S + 1 tokens. */
  seqLen: number;
  /** Sequences the job will read (steps × accumulation); more than the file holds is a warning. */
  sequencesNeeded?: number;
  /**
   * Read the whole token file: recompute its sha256 and compare with the index, and check every
   * token id against the tokenizer's vocabulary.
   */
  verifyChecksum?: boolean;
  /** The model's vocabulary size: the tokenizer's must not exceed it. */
  modelVocabSize?: number;
}

export type DataCheck =
  | {
      ok: true;
      indexPath: string;
      tokenPath: string;
      index: TokenIndex;
      tokens: number;
      /** floor((tokens - 1) / seqLen). */
      sequences: number;
      /** Passes over the data the job will make (sequencesNeeded / sequences), when known. */
      epochs: number | null;
      warnings: string[];
    }
  | { ok: false; error: string };

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The sha256 of a token file and its first token id at or past `vocabSize` (one pass). */
export async function scanTokenFile(
  path: string,
  vocabSize: number,
): Promise<{ sha256: string; maxId: number; firstBad?: { position: number; id: number } }> {
  const hash = createHash('sha256');
  let carry = Buffer.alloc(0);
  let position = 0;
  let maxId = 0;
  let firstBad: { position: number; id: number } | undefined;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    const bytes = carry.length > 0 ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    const whole = bytes.length - (bytes.length % 4);
    for (let at = 0; at < whole; at += 4, position++) {
      const id = bytes.readUInt32LE(at);
      if (id > maxId) maxId = id;
      if (id >= vocabSize && !firstBad) firstBad = { position, id };
    }
    carry = Buffer.from(bytes.subarray(whole));
  }
  return { sha256: hash.digest('hex'), maxId, ...(firstBad ? { firstBad } : {}) };
}

export async function checkDataFile(indexOrTokenPath: string, options: CheckDataOptions): Promise<DataCheck> {
  const fail = (error: string): DataCheck => ({ ok: false, error });
  const { seqLen, sequencesNeeded } = options;
  if (!Number.isSafeInteger(seqLen) || seqLen < 1)
    return fail(`seq_len must be a positive integer, got ${seqLen}`);
  if (sequencesNeeded !== undefined && (!Number.isSafeInteger(sequencesNeeded) || sequencesNeeded < 0)) {
    return fail(`sequencesNeeded must be a non-negative integer, got ${sequencesNeeded}`);
  }

  const paths = dataPaths(indexOrTokenPath);
  if (paths.tokenPath !== null) {
    try {
      await stat(paths.tokenPath);
    } catch {
      return fail(
        `token file ${paths.tokenPath} does not exist (pack the data with 'longctx data pack' first)`,
      );
    }
  }
  let index: TokenIndex;
  try {
    index = await readTokenIndex(paths.indexPath);
  } catch (e) {
    if (e instanceof TokenIndexError) return fail(e.message);
    throw e;
  }
  const tokenPath = tokenPathOf(paths.indexPath, index);
  if (paths.tokenPath !== null && basename(paths.tokenPath) !== index.tokenFile) {
    return fail(`index ${paths.indexPath} describes ${index.tokenFile}, not ${paths.tokenPath}`);
  }

  let bytes: number;
  try {
    bytes = (await stat(tokenPath)).size;
  } catch {
    return fail(
      `token file ${tokenPath} (named by index ${paths.indexPath}) does not exist; pack the data again`,
    );
  }
  if (bytes !== index.tokens * 4) {
    return fail(
      `token file ${tokenPath} is ${bytes} bytes but its index ${paths.indexPath} says ${index.tokens} tokens ` +
        `(${index.tokens * 4} bytes): the file is truncated or was replaced; pack the data again`,
    );
  }
  if (options.verifyChecksum) {
    const vocabSize = index.tokenizer.vocabSize;
    const scan = await scanTokenFile(tokenPath, vocabSize);
    if (scan.sha256 !== index.sha256) {
      return fail(
        `token file ${tokenPath} has sha256 ${scan.sha256} but its index says ${index.sha256}: the file is corrupt or was replaced; pack the data again`,
      );
    }
    if (scan.firstBad) {
      return fail(
        `token file ${tokenPath}: token ${scan.firstBad.position} is id ${scan.firstBad.id}, not in the vocabulary of tokenizer '${index.tokenizer.name}' (${vocabSize} ids) ` +
          `(largest id ${scan.maxId}): the file does not match its tokenizer; pack the data again with the right one`,
      );
    }
  }
  if (options.modelVocabSize !== undefined && index.tokenizer.vocabSize > options.modelVocabSize) {
    return fail(
      `token file ${tokenPath} was made with tokenizer '${index.tokenizer.name}' of ${index.tokenizer.vocabSize} ids, ` +
        `more than the model's vocab size ${options.modelVocabSize}`,
    );
  }
  if (index.tokens < seqLen + 1) {
    return fail(
      `token file ${tokenPath} holds ${index.tokens} tokens, too few for one sequence of seq_len ${seqLen} ` +
        `(needs ${seqLen + 1}: ${seqLen} inputs and the label after the last one); use more data or a shorter seq_len`,
    );
  }

  const sequences = Math.floor((index.tokens - 1) / seqLen);
  const warnings: string[] = [];
  let epochs: number | null = null;
  if (sequencesNeeded !== undefined) {
    epochs = sequencesNeeded / sequences;
    if (sequencesNeeded > sequences) {
      warnings.push(
        `the job reads ${sequencesNeeded} sequences of ${seqLen} tokens but ${tokenPath} holds ${sequences}: ` +
          `the data repeats (${epochs.toFixed(2)} epochs)`,
      );
    }
  }
  return {
    ok: true,
    indexPath: paths.indexPath,
    tokenPath,
    index,
    tokens: index.tokens,
    sequences,
    epochs,
    warnings,
  };
}
