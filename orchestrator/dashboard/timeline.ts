// The job's timeline over wall-clock time: every state change (placed, running, recovering after a
// failure, …) and every checkpoint, so restarts and saves line up with the charts above.
import type { JobEvent } from '../../control/events.js';
import type { WorkerEventRecord } from '../../control/telemetry-history.js';
import { clear, h, svg } from './dom.js';
import { clock } from './format.js';

const STATE_COLORS: Record<string, string> = {
  QUEUED: '#90a4ae',
  PLACED: '#42a5f5',
  RUNNING: '#1565c0',
  RECOVERING: '#c62828',
  SUCCEEDED: '#2e7d32',
  FAILED: '#b71c1c',
  CANCELLED: '#6d4c41',
};

export function renderTimeline(
  root: HTMLElement,
  events: JobEvent[],
  workers: WorkerEventRecord[],
  endMs: number,
): void {
  clear(root);
  const checkpoints = workers.filter((w) => w.kind === 'checkpoint-saved');
  const times = [...events.map((e) => e.timeMs), ...checkpoints.map((c) => c.timeMs)];
  if (times.length === 0) {
    root.append(h('p', { class: 'empty' }, 'Nothing has happened yet.'));
    return;
  }
  const start = Math.min(...times);
  const end = Math.max(endMs, ...times, start + 1000);
  const width = 1000;
  const x = (t: number) => 20 + ((width - 40) * (t - start)) / (end - start);
  const chart = svg('svg', {
    viewBox: `0 0 ${width} 90`,
    class: 'timeline-svg',
    role: 'img',
    'aria-label': 'job timeline',
  });
  chart.append(svg('line', { x1: 20, x2: width - 20, y1: 40, y2: 40, class: 'axis' }));
  // State spans: each state lasts until the next change.
  events.forEach((e, i) => {
    const until = events[i + 1]?.timeMs ?? end;
    chart.append(
      svg(
        'rect',
        {
          x: x(e.timeMs),
          y: 32,
          width: Math.max(1, x(until) - x(e.timeMs)),
          height: 16,
          fill: STATE_COLORS[e.state] ?? '#999',
          class: `span state-${e.state.toLowerCase()}`,
        },
        svg('title', {}, `${clock(e.timeMs)} ${e.state} (attempt ${e.attempt}): ${e.message}`),
      ),
    );
    if (e.state === 'RECOVERING')
      chart.append(
        svg('text', { x: x(e.timeMs), y: 26, class: 'restart-label', 'text-anchor': 'middle' }, `restart`),
      );
  });
  for (const c of checkpoints) {
    const cx = x(c.timeMs);
    chart.append(
      svg(
        'path',
        { d: `M ${cx} 54 l 6 8 l -6 8 l -6 -8 z`, class: 'checkpoint-mark' },
        svg(
          'title',
          {},
          `${clock(c.timeMs)} checkpoint at step ${c.checkpoint?.step ?? c.step}${c.checkpoint ? `, saved in ${c.checkpoint.saveSeconds.toFixed(2)} s` : ''}`,
        ),
      ),
    );
  }
  chart.append(
    svg('text', { x: 20, y: 88, class: 'tick' }, clock(start)),
    svg('text', { x: width - 20, y: 88, class: 'tick', 'text-anchor': 'end' }, clock(end)),
  );
  const legend = h(
    'div',
    { class: 'legend' },
    ...Object.entries(STATE_COLORS).map(([state, color]) =>
      h('span', { class: 'key', style: `--key:${color}` }, state.toLowerCase()),
    ),
    h('span', { class: 'key checkpoint' }, `checkpoint (${checkpoints.length})`),
  );
  root.append(chart, legend);
}
