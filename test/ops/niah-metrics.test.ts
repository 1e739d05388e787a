// The NIAH gauges of /metrics, read back through a Prometheus text-format parser: the cells and the
// accuracy of each job's newest evaluated checkpoint (a failed evaluation does not replace it),
// and no samples for a job that has no evaluation.
import test from 'ava';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

import { parseSpec } from '../../orchestrator/spec/validate.js';
import { createHttpApp } from '../../orchestrator/http/app.js';
import { PlanStore } from '../../orchestrator/plan/plan-store.js';
import { JobQueue } from '../../control/job-queue.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import type { NiahEvaluation } from '../../core/reports.js';
import { connect, deletePrefix, testPrefix } from '../helpers/control.js';
import { useRedis } from '../helpers/redis.js';
import { get, jobSpec, listen } from './fixtures.js';

const redis = useRedis(test);

function evaluation(step: number, found: boolean[][], error?: string): NiahEvaluation {
  const contextLengths = [256, 512];
  const depths = [0, 0.5, 1];
  const cells = error
    ? []
    : contextLengths.flatMap((contextLength, i) =>
        depths.map((depth, j) => ({
          contextLength,
          depth,
          found: found[i]![j]!,
          answerCorrect: found[i]![j]! ? 5 : 2,
          answerTokens: 5,
        })),
      );
  return {
    step,
    checkpoint: `/runs/j/checkpoints/step-${String(step).padStart(8, '0')}`,
    contextLengths,
    depths,
    cells,
    accuracy: cells.length === 0 ? 0 : cells.filter((c) => c.found).length / cells.length,
    ropeTheta: null,
    seconds: 1.5,
    timeMs: Date.now(),
    ...(error ? { error } : {}),
  };
}

test('/metrics exports the newest NIAH grid and accuracy of each job', async (t) => {
  const connection = connect(redis().url);
  const prefix = testPrefix('niah-metrics');
  const queue = new JobQueue(connection, prefix);
  const history = new TelemetryHistory(connection, queue.store.keys);
  const plans = new PlanStore(connection, queue.store.keys);
  const app = createHttpApp({ queue, history, redis: connection, plans, log: () => {} });
  await app.ready;
  const server = await listen(app);
  t.teardown(async () => {
    await server.close();
    await app.close();
    await queue.close();
    await deletePrefix(connection, prefix);
    connection.disconnect();
  });

  const specYaml = `${jobSpec('evaluated', 2, 40).specYaml}checkpoint: { every: 10 }\neval:\n  niah: { every: 10, lengths: [256, 512], depths: [0, 0.5, 1] }\n`;
  const parsed = parseSpec(specYaml);
  if (!parsed.ok) return t.fail(JSON.stringify(parsed.errors));
  const evaluated = await queue.submit({ spec: parsed.spec, specYaml });
  const plain = await queue.submit(jobSpec('plain', 2, 40));
  await history.recordNiah(
    evaluated.id,
    evaluation(10, [
      [false, false, false],
      [false, false, false],
    ]),
  );
  await history.recordNiah(
    evaluated.id,
    evaluation(20, [
      [true, true, false],
      [true, false, false],
    ]),
  );
  // Newer, but failed: the gauges keep showing step 20.
  await history.recordNiah(evaluated.id, evaluation(30, [], 'out of memory on cpu:1'));

  const reply = await get(`${server.url}/metrics`);
  t.is(reply.status, 200);
  const families = parsePrometheusTextFormat(reply.body);
  const samples = (name: string) => {
    const f = families.find((x) => x.name === name);
    if (!f) throw new Error(`no ${name}`);
    t.is(f.type, 'GAUGE', name);
    t.true(f.help.length > 0);
    return f.metrics.map((m) => ({ labels: m.labels ?? {}, value: Number(m.value) }));
  };
  const cells = samples('longctx_niah_accuracy');
  t.is(cells.length, 6, 'one sample per cell of the newest evaluation only');
  const cell = (length: number, depth: number) =>
    cells.find(
      (c) =>
        c.labels.job_id === evaluated.id &&
        c.labels.step === '20' &&
        c.labels.context_length === String(length) &&
        c.labels.depth === String(depth),
    )?.value;
  t.is(cell(256, 0), 1);
  t.is(cell(256, 0.5), 1);
  t.is(cell(256, 1), 0);
  t.is(cell(512, 0), 1);
  t.is(cell(512, 0.5), 0);
  t.is(cell(512, 1), 0);
  t.deepEqual(samples('longctx_job_niah_accuracy'), [{ labels: { job_id: evaluated.id }, value: 3 / 6 }]);
  t.deepEqual(samples('longctx_job_niah_step'), [{ labels: { job_id: evaluated.id }, value: 20 }]);
  t.false(cells.some((c) => c.labels.job_id === plain.id));
});
