// The NIAH gauges of /metrics: for each job, its newest evaluated checkpoint (the `eval: niah` of
// its spec, orchestrator/eval/niah-follow-up.ts). Only the newest: a cell per step would add a
// length × depth grid of series at every evaluation of a long run.
//   longctx_niah_accuracy{job_id, step, context_length, depth}  1 when the needle was found, else 0
//   longctx_job_niah_accuracy{job_id}                           found cases / all cases
//   longctx_job_niah_step{job_id}                               the step those belong to
import { Gauge, type Registry } from 'prom-client';

import type { JobRecord } from '../../control/job-record.js';
import type { TelemetryHistory } from '../../control/telemetry-history.js';
import type { NiahEvaluation } from '../../core/reports.js';

/** The newest evaluation that has results (a failed one has none). */
export function newestNiah(evaluations: NiahEvaluation[]): NiahEvaluation | undefined {
  return evaluations.filter((e) => e.error === undefined).at(-1);
}

export function registerNiahGauges(
  registry: Registry,
  jobs: () => Promise<JobRecord[]>,
  history: TelemetryHistory,
): void {
  // One read per job and scrape, shared by the three gauges.
  let scrape: Promise<{ job: JobRecord; newest: NiahEvaluation }[]> | undefined;
  const newest = () => {
    scrape ??= (async () => {
      const withNiah = (await jobs()).filter((j) => j.spec.eval?.niah);
      const found = await Promise.all(
        withNiah.map(async (job) => ({ job, newest: newestNiah(await history.niahEvaluations(job.id)) })),
      );
      return found.filter((f): f is { job: JobRecord; newest: NiahEvaluation } => f.newest !== undefined);
    })().finally(() => setImmediate(() => (scrape = undefined)));
    return scrape;
  };

  new Gauge({
    name: 'longctx_niah_accuracy',
    help: "Needle in a haystack at the job's newest evaluated checkpoint: 1 when the key was found at this context length and depth, else 0.",
    labelNames: ['job_id', 'step', 'context_length', 'depth'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { job, newest: e } of await newest()) {
        for (const c of e.cells) {
          const labels = {
            job_id: job.id,
            step: String(e.step),
            context_length: String(c.contextLength),
            depth: String(c.depth),
          };
          this.set(labels, c.found ? 1 : 0);
        }
      }
    },
  });
  new Gauge({
    name: 'longctx_job_niah_accuracy',
    help: "Needle in a haystack at the job's newest evaluated checkpoint: found cases / all cases, 0..1.",
    labelNames: ['job_id'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { job, newest: e } of await newest()) this.set({ job_id: job.id }, e.accuracy);
    },
  });
  new Gauge({
    name: 'longctx_job_niah_step',
    help: 'The checkpoint step of the newest needle-in-a-haystack evaluation of the job.',
    labelNames: ['job_id'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { job, newest: e } of await newest()) this.set({ job_id: job.id }, e.step);
    },
  });
}
