// Per-rank panels for the latest step. Time: each rank's step split into compute, waiting on
// communication, and the rest (data, optimizer, checkpoint, idle), on one scale so the slowest
// rank's bar is full width; stragglers (slow compute over several steps) are flagged. Memory: each
// rank's measured device peak against the planner's prediction, on a scale of the device budget.
import type { JobPlan } from '../http/views.js';
import type { StepSummary } from '../telemetry/step-aggregator.js';
import { clear, h } from './dom.js';
import { bytes, duration, percent } from './format.js';

function segment(kind: string, seconds: number, total: number): HTMLElement {
  const width = total > 0 ? (100 * seconds) / total : 0;
  return h('div', {
    class: `seg ${kind}`,
    style: `width:${width.toFixed(2)}%`,
    title: `${kind}: ${duration(seconds)}`,
  });
}

export function renderRankTime(root: HTMLElement, latest: StepSummary | null): void {
  clear(root);
  if (!latest) {
    root.append(h('p', { class: 'empty' }, 'No step has completed yet.'));
    return;
  }
  const scale = Math.max(...latest.ranks.map((r) => r.compute + r.commWait + r.other), 1e-12);
  root.append(
    h(
      'div',
      { class: 'legend' },
      h('span', { class: 'key compute' }, 'compute'),
      h('span', { class: 'key comm' }, 'communication wait'),
      h('span', { class: 'key other' }, 'other / idle'),
      h('span', {}, `step ${latest.step}, ${duration(latest.stepSeconds)}`),
    ),
  );
  for (const r of latest.ranks) {
    const total = r.compute + r.commWait + r.other;
    root.append(
      h(
        'div',
        {
          class: `rank-row${r.straggler ? ' straggler' : ''}`,
          'data-rank': r.rank,
          'data-straggler': r.straggler,
        },
        h('span', { class: 'rank-label' }, `rank ${r.rank}`),
        h(
          'div',
          { class: 'stack' },
          segment('compute', r.compute, scale),
          segment('comm', r.commWait, scale),
          segment('other', r.other, scale),
        ),
        h(
          'span',
          { class: 'rank-numbers' },
          `${duration(r.compute)} / ${duration(r.commWait)} / ${duration(r.other)}`,
          total > 0 ? ` (${((100 * r.commWait) / total).toFixed(0)}% waiting)` : '',
        ),
        r.straggler
          ? h(
              'span',
              { class: 'badge straggler-badge', title: 'compute well above the median for several steps' },
              'straggler',
            )
          : null,
      ),
    );
  }
}

export function renderRankMemory(
  root: HTMLElement,
  latest: StepSummary | null,
  peaks: number[],
  plan: JobPlan | null,
): void {
  clear(root);
  if (!latest && peaks.every((p) => p === 0)) {
    root.append(h('p', { class: 'empty' }, 'No memory reported yet.'));
    return;
  }
  const budget = plan?.budgetBytes ?? 0;
  const predicted = plan?.memory.peak ?? 0;
  // A full bar is the device budget: what a rank can use, so a bar's length reads as "how full".
  // Only without a plan (no budget known) is the scale the largest value, and the caption says so.
  const scale = budget > 0 ? budget : Math.max(predicted, ...peaks, 1);
  root.append(
    h(
      'div',
      { class: 'legend' },
      h('span', { class: 'key measured' }, 'measured peak'),
      plan
        ? h('span', { class: 'key predicted' }, `planned peak ${bytes(predicted)}`)
        : h('span', {}, 'no plan recorded'),
      budget > 0 ? h('span', {}, `${percent(Math.max(...peaks) / budget)} of the budget used at most`) : null,
    ),
    h(
      'p',
      { class: 'caption mem-scale', 'data-scale-bytes': scale },
      budget > 0
        ? `Scale: a full bar is the device budget, ${bytes(budget)} per device.`
        : `Scale: a full bar is the largest value shown, ${bytes(scale)} (no budget known).`,
    ),
  );
  peaks.forEach((peak, rank) => {
    const over = predicted > 0 && peak > predicted;
    const bar = h(
      'div',
      { class: 'mem-bar' },
      h('div', {
        class: `seg measured${over ? ' over' : ''}`,
        style: `width:${((100 * peak) / scale).toFixed(2)}%`,
      }),
      predicted > 0
        ? h('div', {
            class: 'plan-mark',
            style: `left:${((100 * predicted) / scale).toFixed(2)}%`,
            title: `planned ${bytes(predicted)}`,
          })
        : null,
    );
    const ofBudget = budget > 0 ? `, ${percent(peak / budget)} of budget` : '';
    const vsPlan = predicted > 0 ? ` (${((100 * peak) / predicted).toFixed(0)}% of plan${ofBudget})` : '';
    root.append(
      h(
        'div',
        { class: 'mem-row', 'data-rank': rank },
        h('span', { class: 'rank-label' }, `rank ${rank}`),
        bar,
        h('span', { class: 'rank-numbers' }, `${bytes(peak)}${vsPlan}`),
      ),
    );
  });
}
