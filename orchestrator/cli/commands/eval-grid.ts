// What `eval niah` and `eval vniah` share on the command line: the grid's number lists and the
// length × depth table the results print as.
import type { NiahReport } from '../../../eval/niah-score.js';
import { UsageError, type Args } from '../args.js';
import { formatPercent, table } from '../format.js';

/** A --NAME flag's comma-separated numbers, or `fallback` without the flag. */
export function numberList(args: Args, name: string, fallback: number[]): number[] {
  const v = args.string(name);
  if (v === undefined) return fallback;
  const values = v.split(',').map((s) => Number(s.trim()));
  if (v.trim() === '' || values.some((n, i) => !Number.isFinite(n) || v.split(',')[i]!.trim() === '')) {
    throw new UsageError(`--${name} must be a comma-separated list of numbers, got '${v}'`);
  }
  return values;
}

/** The grid as a table: one row per length, one column per depth, ✓ found / · not. */
export function renderNiahTable(report: NiahReport): string {
  const header = ['length', ...report.depths.map((d) => `d=${d}`), 'accuracy'];
  const rows = report.contextLengths.map((length, i) => [
    String(length),
    ...report.depths.map((_, j) => {
      const c = report.cells[i * report.depths.length + j]!;
      return c.found ? '✓' : `· ${c.answerCorrect}/${c.answerTokens}`;
    }),
    formatPercent(report.accuracyByLength[i]!),
  ]);
  return (
    table(header, rows) +
    `accuracy ${formatPercent(report.accuracy)} over ${report.cells.length} cases ` +
    `(✓ found; · k/n: k of the key's n tokens were the argmax)\n`
  );
}
