// The jobs table: one row per job with its state, progress, loss, tokens/s, MFU, restarts; rows
// change in place as the server streams them.
import type { JobRow } from '../http/views.js';
import { clear, h } from './dom.js';
import { ago, duration, fixed, percent, rate } from './format.js';
import { subscribe } from './live.js';

function progress(row: JobRow): HTMLElement {
  const fraction = row.totalSteps > 0 ? Math.min(1, row.step / row.totalSteps) : 0;
  const bar = h(
    'div',
    { class: 'bar' },
    h('div', { class: 'fill', style: `width:${(100 * fraction).toFixed(1)}%` }),
  );
  return h('div', { class: 'progress' }, bar, h('span', {}, `${row.step}/${row.totalSteps}`));
}

function rowElement(row: JobRow): HTMLTableRowElement {
  return h(
    'tr',
    {
      'data-job-id': row.id,
      'data-state': row.state,
      onclick: () => (location.hash = `#/jobs/${encodeURIComponent(row.id)}`),
    },
    h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(row.id)}` }, row.id)),
    h('td', { class: 'state' }, h('span', { class: `badge state-${row.state.toLowerCase()}` }, row.state)),
    h('td', { class: 'progress-cell' }, progress(row)),
    h('td', { class: 'num loss' }, fixed(row.loss, 4)),
    h('td', { class: 'num tps' }, rate(row.tokensPerSecond)),
    h('td', { class: 'num mfu' }, percent(row.mfu)),
    h('td', { class: 'num' }, duration(row.etaSeconds)),
    h('td', { class: 'num restarts' }, `${row.restarts}/${row.maxRestarts}`),
    h('td', {}, row.node || '–'),
    h('td', { class: 'num' }, String(row.devices)),
    h('td', {}, ago(row.submittedAtMs)),
    h('td', { class: 'message', title: row.message }, row.message),
  );
}

const HEADERS = [
  'job',
  'state',
  'progress',
  'loss',
  'tokens/s',
  'MFU',
  'ETA',
  'restarts',
  'node',
  'devices',
  'submitted',
  'last message',
];

/** Shows the jobs table in `root`; returns a function that stops its updates. */
export function showJobs(root: HTMLElement): () => void {
  clear(root);
  const body = h('tbody');
  const empty = h('p', { class: 'empty' }, "No jobs yet. Submit one with 'longctx submit SPEC'.");
  const tableEl = h(
    'table',
    { class: 'jobs', id: 'jobs-table' },
    h('thead', {}, h('tr', {}, ...HEADERS.map((t) => h('th', {}, t)))),
    body,
  );
  root.append(h('h1', {}, 'Jobs'), tableEl, empty);
  // "No jobs yet" only once the server has said so.
  empty.hidden = true;
  const rows = new Map<string, JobRow>();
  const render = () => {
    clear(body);
    for (const row of [...rows.values()].sort((a, b) => b.submittedAtMs - a.submittedAtMs))
      body.append(rowElement(row));
    empty.hidden = rows.size > 0;
  };
  // The first paint comes from one plain read, never waiting on the event stream; the stream's
  // own snapshot, when it comes, replaces it.
  let streamed = false;
  fetch('/api/jobs')
    .then(async (r) => (r.ok ? ((await r.json()) as { jobs: JobRow[] }).jobs : undefined))
    .then((first) => {
      if (!first || streamed) return;
      for (const row of first) rows.set(row.id, row);
      render();
    })
    .catch(() => undefined);
  return subscribe('/api/stream', {
    jobs: (data) => {
      streamed = true;
      rows.clear();
      for (const row of data as JobRow[]) rows.set(row.id, row);
      render();
    },
    job: (data) => {
      const row = data as JobRow;
      rows.set(row.id, row);
      const existing = body.querySelector<HTMLTableRowElement>(`tr[data-job-id="${CSS.escape(row.id)}"]`);
      if (!existing) return render();
      // In place, keeping the first cell (the job's link): a row rebuilt on every step could
      // never be clicked while its job trains fast.
      const fresh = rowElement(row);
      existing.dataset.state = row.state;
      for (let i = fresh.cells.length - 1; i >= 1; i--) existing.cells[i]!.replaceWith(fresh.cells[i]!);
    },
  });
}
