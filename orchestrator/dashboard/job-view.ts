// One job: its header (state, progress, loss, tokens/s, MFU, ETA, restarts), the loss and
// throughput charts, the per-rank time and memory panels, the zigzag shard map and the timeline,
// all kept current from the job's event stream; and for a job whose spec evaluates its checkpoints
// (eval: niah), the needle-in-a-haystack heatmap, read again every few seconds while it runs.
import type { JobEvent } from '../../control/events.js';
import type { NiahEvaluation } from '../../core/reports.js';
import type { WorkerEventRecord } from '../../control/telemetry-history.js';
import type { StepSummary } from '../telemetry/step-aggregator.js';
import { addStep, type JobDetail, type JobRow } from '../http/views.js';
import { lossChartSpec, StepChart, throughputChartSpec, type Marker } from './charts.js';
import { clear, h } from './dom.js';
import { ago, duration, fixed, percent, rate } from './format.js';
import { subscribe } from './live.js';
import { renderRankMemory, renderRankTime } from './rank-panel.js';
import { renderNiahHeatmap } from './niah-heatmap.js';
import { renderShardMap } from './shard-map.js';
import { renderTimeline } from './timeline.js';

function stat(label: string, value: string, cls = ''): HTMLElement {
  return h(
    'div',
    { class: `stat ${cls}` },
    h('span', { class: 'label' }, label),
    h('span', { class: 'value' }, value),
  );
}

function header(job: JobRow): HTMLElement {
  const fraction = job.totalSteps > 0 ? job.step / job.totalSteps : 0;
  return h(
    'div',
    { class: 'job-header', 'data-state': job.state },
    h(
      'h1',
      {},
      job.id,
      ' ',
      h('span', { class: `badge state-${job.state.toLowerCase()}`, id: 'job-state' }, job.state),
    ),
    h('p', { class: 'message' }, job.message),
    h(
      'div',
      { class: 'stats' },
      stat('step', `${job.step} / ${job.totalSteps} (${percent(fraction, 0)})`, 'step'),
      stat('loss', fixed(job.loss, 4), 'loss'),
      stat('tokens/s', rate(job.tokensPerSecond), 'tps'),
      stat('MFU', percent(job.mfu), 'mfu'),
      stat('step time', duration(job.stepSeconds)),
      stat('ETA', duration(job.etaSeconds)),
      stat('restarts', `${job.restarts} / ${job.maxRestarts}`, 'restarts'),
      stat('node', job.node ? `${job.node} (${job.devices} devices)` : `${job.devices} devices`),
      stat('submitted', ago(job.submittedAtMs)),
    ),
  );
}

function markersOf(workers: WorkerEventRecord[]): Marker[] {
  const out: Marker[] = [];
  for (const w of workers) {
    if (w.kind === 'checkpoint-saved')
      out.push({ step: w.checkpoint?.step ?? w.step, kind: 'checkpoint', label: `checkpoint ${w.step}` });
    if (w.kind === 'resumed') out.push({ step: w.step, kind: 'restart', label: `resumed at ${w.step}` });
  }
  return out;
}

function section(title: string, id: string, note?: string): { el: HTMLElement; body: HTMLElement } {
  const body = h('div', { class: 'panel-body', id });
  return {
    el: h(
      'section',
      { class: 'panel' },
      h('h2', {}, title),
      note ? h('p', { class: 'caption' }, note) : null,
      body,
    ),
    body,
  };
}

/** Shows job `jobId` in `root`; returns a function that stops its updates. */
export function showJob(root: HTMLElement, jobId: string): () => void {
  clear(root);
  const headerSlot = h('div');
  const loss = section('Loss', 'loss-chart');
  const throughput = section(
    'Throughput',
    'throughput-chart',
    "Tokens per second over all ranks. MFU is proportional to it (× FLOPs per token ÷ the devices' peak), so it is not drawn again: its value is in the header.",
  );
  const ranks = section('Per-rank time, last step', 'rank-panel');
  const memory = section(
    'Device memory per rank',
    'memory-panel',
    'Highest device peak each rank reported, against the plan.',
  );
  const shards = section('Zigzag shard map', 'shard-map');
  const timeline = section('Timeline', 'timeline', 'State changes, restarts and checkpoints over time.');
  const niah = section(
    'Needle in a haystack',
    'niah-panel',
    "Context length × needle depth at an evaluated checkpoint (the spec's eval: niah); green: the key was found.",
  );
  niah.el.hidden = true;
  const spec = h('pre', { class: 'spec' });
  root.append(
    headerSlot,
    h('div', { class: 'grid two' }, loss.el, throughput.el),
    h('div', { class: 'grid two' }, ranks.el, memory.el),
    h('div', { class: 'grid one' }, niah.el),
    h('div', { class: 'grid one' }, shards.el, timeline.el),
    h('details', { class: 'panel' }, h('summary', {}, 'Job spec'), spec),
  );

  let detail: JobDetail | undefined;
  let charts: StepChart[] = [];
  const markers = () => (detail ? markersOf(detail.workerEvents) : []);
  const redrawTimeline = () => {
    if (!detail) return;
    const end = detail.job.finishedAtMs ?? Date.now();
    renderTimeline(timeline.body, detail.events, detail.workerEvents, end);
  };
  const clock = setInterval(redrawTimeline, 5000);

  // NIAH results come from the server's evaluation after a checkpoint, not from the event stream:
  // read them now and every few seconds while the job may still add some.
  let evaluations: NiahEvaluation[] = [];
  let chosenStep: number | undefined;
  const drawNiah = () =>
    renderNiahHeatmap(niah.body, evaluations, chosenStep, (step) => {
      chosenStep = step;
      drawNiah();
    });
  let niahSeen = '';
  const readNiah = () => {
    if (!detail || detail.spec.niahSteps.length === 0) return;
    niah.el.hidden = false;
    fetch(`/api/jobs/${encodeURIComponent(jobId)}/niah`)
      .then(async (r) => (r.ok ? ((await r.json()) as { evaluations: NiahEvaluation[] }) : undefined))
      .then((body) => {
        if (!body) return;
        const seen = JSON.stringify(body.evaluations.map((e) => [e.step, e.timeMs]));
        if (seen === niahSeen && niah.body.firstChild) return; // unchanged: keep the user's view
        niahSeen = seen;
        evaluations = body.evaluations;
        drawNiah();
      })
      .catch(() => undefined);
  };
  const niahClock = setInterval(readNiah, 3000);

  const render = () => {
    if (!detail) return;
    clear(headerSlot);
    headerSlot.append(header(detail.job));
    for (const c of charts) c.destroy();
    clear(loss.body);
    clear(throughput.body);
    charts = [
      new StepChart(loss.body, lossChartSpec, detail.series, markers),
      new StepChart(throughput.body, throughputChartSpec, detail.series, markers),
    ];
    renderRankTime(ranks.body, detail.latest);
    renderRankMemory(memory.body, detail.latest, detail.rankPeakBytes, detail.plan);
    renderShardMap(shards.body, detail.plan, detail.spec.seqLen);
    redrawTimeline();
    spec.textContent = detail.spec.specYaml;
    readNiah();
  };

  const onStep = (s: StepSummary) => {
    if (!detail) return;
    addStep(detail.series, s);
    detail.latest = s;
    for (const r of s.ranks)
      detail.rankPeakBytes[r.rank] = Math.max(detail.rankPeakBytes[r.rank] ?? 0, r.deviceBytesPeak);
    const job = detail.job;
    Object.assign(job, {
      step: s.step,
      loss: s.loss,
      tokensPerSecond: s.tokensPerSecond,
      mfu: s.mfu,
      stepSeconds: s.stepSeconds,
      etaSeconds: s.stepSeconds > 0 ? Math.max(0, job.totalSteps - s.step) * s.stepSeconds : null,
    });
    clear(headerSlot);
    headerSlot.append(header(job));
    for (const c of charts) c.update(detail.series);
    renderRankTime(ranks.body, s);
    renderRankMemory(memory.body, s, detail.rankPeakBytes, detail.plan);
  };

  // The server refused the stream: ask the same path as JSON for the reason (e.g. no such job).
  const refused = () => {
    fetch(`/api/jobs/${encodeURIComponent(jobId)}`)
      .then(async (r) => (r.ok ? undefined : ((await r.json()) as { error: string }).error))
      .catch((err: unknown) => String(err))
      .then((error) => {
        if (error === undefined) return;
        clear(root);
        root.append(
          h('p', { class: 'error', id: 'job-error' }, error),
          h('a', { href: '#/' }, 'back to the jobs'),
        );
      })
      .catch(() => undefined);
  };
  // The first paint comes from one plain read of the job, so it never waits on the event stream
  // (a proxy may hold server-sent events back); the stream's own snapshot, when it comes, wins.
  let streamed = false;
  fetch(`/api/jobs/${encodeURIComponent(jobId)}`)
    .then(async (r) => (r.ok ? ((await r.json()) as JobDetail) : undefined))
    .then((first) => {
      if (!first || streamed) return;
      detail = first;
      render();
    })
    .catch(() => undefined); // the stream shows the job, or refused() says why not
  const close = subscribe(
    `/api/jobs/${encodeURIComponent(jobId)}/stream`,
    {
      snapshot: (data) => {
        streamed = true;
        detail = data as JobDetail;
        render();
      },
      step: (data) => onStep(data as StepSummary),
      worker: (data) => {
        if (!detail) return;
        detail.workerEvents.push(data as WorkerEventRecord);
        for (const c of charts) c.redraw();
        redrawTimeline();
      },
      state: (data) => {
        if (!detail) return;
        const { event, job } = data as { event: JobEvent; job: JobRow };
        detail.events.push(event);
        detail.job = job;
        clear(headerSlot);
        headerSlot.append(header(job));
        redrawTimeline();
      },
    },
    refused,
  );
  return () => {
    clearInterval(clock);
    clearInterval(niahClock);
    close();
    for (const c of charts) c.destroy();
  };
}
