// A NIAH grid as a standalone SVG heatmap (what `longctx demo --niah` writes beside its results):
// context length rows × needle depth columns, each cell coloured by accuracy on the dashboard's
// scale (red 0 → green 1) and labelled with how many of the key's tokens were the argmax.
import type { NiahCell } from '../../core/reports.js';

export interface NiahGrid {
  contextLengths: number[];
  depths: number[];
  cells: NiahCell[];
  accuracy: number;
}

const CELL_W = 58;
const CELL_H = 32;
const LEFT = 104;
const TOP = 64;

/** The same scale as the dashboard's heatmap (orchestrator/dashboard/niah-heatmap.ts). */
const colour = (accuracy: number) => `hsl(${Math.round(120 * accuracy)}, 65%, 52%)`;
const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderNiahSvg(grid: NiahGrid, title: string): string {
  const width = LEFT + grid.depths.length * (CELL_W + 3) + 70;
  const height = TOP + grid.contextLengths.length * (CELL_H + 3) + 30;
  const text = (x: number, y: number, s: string, attrs = '') =>
    `<text x="${x}" y="${y}" ${attrs}>${escapeXml(s)}</text>`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    text(8, 18, title, 'font-size="14" font-weight="600"'),
    text(
      8,
      36,
      `accuracy ${(100 * grid.accuracy).toFixed(1)}% over ${grid.cells.length} cases`,
      'fill="#5f6b7a"',
    ),
    text(LEFT - 8, TOP - 8, 'length \\ depth', 'text-anchor="end" fill="#5f6b7a"'),
  ];
  grid.depths.forEach((d, j) =>
    parts.push(
      text(LEFT + j * (CELL_W + 3) + CELL_W / 2, TOP - 8, String(d), 'text-anchor="middle" fill="#5f6b7a"'),
    ),
  );
  grid.contextLengths.forEach((length, i) => {
    const y = TOP + i * (CELL_H + 3);
    parts.push(text(LEFT - 8, y + CELL_H / 2 + 4, String(length), 'text-anchor="end" fill="#5f6b7a"'));
    const row = grid.cells.slice(i * grid.depths.length, (i + 1) * grid.depths.length);
    row.forEach((c, j) => {
      const x = LEFT + j * (CELL_W + 3);
      parts.push(
        `<rect x="${x}" y="${y}" width="${CELL_W}" height="${CELL_H}" rx="3" fill="${colour(c.found ? 1 : 0)}"/>`,
        text(
          x + CELL_W / 2,
          y + CELL_H / 2 + 4,
          `${c.answerCorrect}/${c.answerTokens}`,
          'text-anchor="middle" fill="#fff" font-weight="600"',
        ),
      );
    });
    const rowAccuracy = row.filter((c) => c.found).length / Math.max(1, row.length);
    const x = LEFT + grid.depths.length * (CELL_W + 3) + 8;
    parts.push(text(x, y + CELL_H / 2 + 4, `${Math.round(100 * rowAccuracy)}%`));
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
