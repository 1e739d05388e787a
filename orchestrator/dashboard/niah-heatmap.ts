// The needle-in-a-haystack heatmap of a job: context length (rows) × needle depth (columns), each
// cell coloured by its accuracy (found cases of that length and depth: 1 green, 0 red), for the
// newest evaluated checkpoint or the one chosen in the step list. A cell also says how many of the
// key's tokens were the argmax, which shows how close a miss was.
import type { NiahEvaluation } from '../../core/reports.js';
import { clear, h } from './dom.js';
import { duration, percent } from './format.js';

/** Red (0) through yellow to green (1). */
export function accuracyColour(accuracy: number): string {
  return `hsl(${Math.round(120 * Math.min(1, Math.max(0, accuracy)))}, 65%, 52%)`;
}

function grid(e: NiahEvaluation): HTMLElement {
  const cell = (i: number, j: number) => e.cells[i * e.depths.length + j]!;
  return h(
    'table',
    { class: 'niah-grid', id: 'niah-heatmap', 'data-step': e.step },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { class: 'corner' }, 'length \\ depth'),
        ...e.depths.map((d) => h('th', {}, String(d))),
        h('th', {}, 'accuracy'),
      ),
    ),
    h(
      'tbody',
      {},
      ...e.contextLengths.map((length, i) => {
        const row = e.depths.map((_, j) => cell(i, j));
        const rowAccuracy = row.filter((c) => c.found).length / row.length;
        return h(
          'tr',
          {},
          h('th', {}, length.toLocaleString('en-US')),
          ...row.map((c) => {
            const accuracy = c.found ? 1 : 0;
            return h(
              'td',
              {
                class: `cell ${c.found ? 'found' : 'missed'}`,
                style: `background: ${accuracyColour(accuracy)}`,
                'data-length': c.contextLength,
                'data-depth': c.depth,
                'data-accuracy': accuracy,
                title: `length ${c.contextLength}, depth ${c.depth}: ${c.found ? 'found' : 'missed'} (${c.answerCorrect} of ${c.answerTokens} key tokens were the argmax)`,
              },
              `${c.answerCorrect}/${c.answerTokens}`,
            );
          }),
          h(
            'td',
            { class: 'row-accuracy', style: `border-left: 6px solid ${accuracyColour(rowAccuracy)}` },
            percent(rowAccuracy, 0),
          ),
        );
      }),
    ),
  );
}

/**
 * Draws the evaluations into `el`: a step selector (newest first) and the chosen step's grid.
 * `chosen` is the step to show (undefined: the newest); `onChoose` is called when the user picks one.
 */
export function renderNiahHeatmap(
  el: HTMLElement,
  evaluations: NiahEvaluation[],
  chosen: number | undefined,
  onChoose: (step: number) => void,
): void {
  clear(el);
  if (evaluations.length === 0) {
    el.append(h('p', { class: 'empty', id: 'niah-empty' }, 'No checkpoint evaluated yet.'));
    return;
  }
  const newestFirst = [...evaluations].reverse();
  const shown = newestFirst.find((e) => e.step === chosen) ?? newestFirst[0]!;
  const select = h(
    'select',
    {
      id: 'niah-step',
      onchange: (ev: Event) => onChoose(Number((ev.target as HTMLSelectElement).value)),
    },
    ...newestFirst.map((e) => {
      const option = h(
        'option',
        { value: e.step },
        `step ${e.step}: ${e.error ? 'failed' : percent(e.accuracy, 0)}`,
      );
      option.selected = e === shown;
      return option;
    }),
  );
  const summary = shown.error
    ? h('p', { class: 'error', id: 'niah-error' }, `The evaluation failed: ${shown.error}`)
    : h(
        'p',
        { class: 'caption', id: 'niah-summary' },
        `Accuracy ${percent(shown.accuracy, 1)} over ${shown.cells.length} cases` +
          (shown.ropeTheta !== null ? ` (rope_theta ${shown.ropeTheta})` : '') +
          `, evaluated in ${duration(shown.seconds)}. A cell is found when every token of the key is the argmax; it shows how many were.`,
      );
  el.append(h('label', { class: 'niah-choice' }, 'Checkpoint ', select), summary);
  if (!shown.error) el.append(grid(shown));
}
