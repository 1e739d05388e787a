// What `eval niah` and `eval vniah` share on the command line: the grid's number lists, running
// the cases with a progress line, and the length × depth table the results print as.
import type { NiahCase } from '../../../eval/niah-cases.js';
import { evaluateNiah } from '../../../eval/niah-run.js';
import { summarize, type NiahReport } from '../../../eval/niah-score.js';
import { UsageError, type Args } from '../args.js';
import type { CliIo } from '../command.js';
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

/**
 * Evaluates the cases of a lengths × depths grid on `ranks` ranks, with a progress line on a
 * terminal (not under --json); the report and the seconds it took.
 */
export async function runNiahGrid(
  io: CliIo,
  args: Args,
  cases: NiahCase[],
  grid: { contextLengths: number[]; depths: number[] },
  run: { checkpoint: string; ranks: number; ropeTheta?: number; budgetGib: number },
): Promise<{ report: NiahReport; seconds: number }> {
  const interactive = io.stdout.isTTY === true && !args.json;
  const started = Date.now();
  const results = await evaluateNiah(cases, {
    checkpoint: run.checkpoint,
    ranks: run.ranks,
    ...(run.ropeTheta !== undefined ? { ropeTheta: run.ropeTheta } : {}),
    deviceBudgetBytes: Math.round(run.budgetGib * 2 ** 30),
    onCase: (r, i, total) => {
      if (interactive)
        io.stderr.write(`\rcase ${i + 1}/${total}: length ${r.contextLength} depth ${r.depth}   `);
    },
  });
  if (interactive) io.stderr.write('\n');
  return {
    report: summarize(grid.contextLengths, grid.depths, results),
    seconds: (Date.now() - started) / 1000,
  };
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
