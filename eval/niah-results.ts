// NIAH results beside the checkpoint they describe: `<checkpoint>/eval-niah.json`, written by
// `longctx eval niah --save` and by the server's follow-up evaluation of a job's checkpoints
// (orchestrator/eval/niah-follow-up.ts). Not listed in the checkpoint's manifest: it describes the
// checkpoint, it is not part of it. Also the haystack read from a packed token file, which both need.
import { writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

import type { NiahEvaluation } from '../core/reports.js';
import { openTokenFile } from '../worker-native/token-file.js';
import type { Haystack } from './niah-cases.js';
import type { NiahReport } from './niah-score.js';

export const NIAH_RESULTS_FILE = 'eval-niah.json';

/** How a grid was evaluated, stored with its results. */
export interface NiahSettings {
  tokenizer: string;
  /** A token file's path, or `generated:<seed>`. */
  haystack: string;
  seed: number;
  ranks: number;
  ropeTheta: number | null;
  evaluatedAtMs: number;
  seconds: number;
}

/** Writes `<dir>/<file>` as {settings, ...report}, whole or not at all (V-NIAH's results too). */
export async function writeEvalResults(
  dir: string,
  file: string,
  settings: object,
  report: NiahReport,
): Promise<string> {
  const path = join(dir, file);
  const partial = `${path}.${process.pid}.tmp`;
  await writeFile(partial, JSON.stringify({ settings, ...report }, null, 2) + '\n');
  await rename(partial, path);
  return path;
}

/** Writes `<dir>/eval-niah.json`. */
export function writeNiahResults(dir: string, settings: NiahSettings, report: NiahReport): Promise<string> {
  return writeEvalResults(dir, NIAH_RESULTS_FILE, settings, report);
}

/** What the server records of one evaluated checkpoint (the cells without keys and losses). */
export function niahEvaluation(
  step: number,
  checkpoint: string,
  settings: NiahSettings,
  report: NiahReport,
): NiahEvaluation {
  return {
    step,
    checkpoint,
    contextLengths: report.contextLengths,
    depths: report.depths,
    cells: report.cells.map((c) => ({
      contextLength: c.contextLength,
      depth: c.depth,
      found: c.found,
      answerCorrect: c.answerCorrect,
      answerTokens: c.answerTokens,
    })),
    accuracy: report.accuracy,
    ropeTheta: settings.ropeTheta,
    seconds: settings.seconds,
    timeMs: settings.evaluatedAtMs,
  };
}

/** The first tokens of a packed token file (its index or tokens), enough for the longest case. */
export async function haystackFromTokenFile(path: string, longest: number): Promise<Haystack> {
  const file = await openTokenFile(path);
  try {
    const need = Math.min(file.tokens, longest);
    const tokens = Uint32Array.from({ length: need }, (_, i) => file.tokenAt(i));
    return { kind: 'tokens', tokens, source: file.path };
  } finally {
    file.close();
  }
}
