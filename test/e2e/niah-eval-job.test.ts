// A job spec's `eval: niah`: the server evaluates the chosen checkpoints as they are saved, writes
// eval-niah.json beside each, and records the results; an evaluation that cannot run is recorded
// with its reason and costs the job nothing.
import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { openTokenizer } from '../../data/hf-tokenizer.js';
import { buildNiahCases } from '../../eval/niah-cases.js';
import { NIAH_RESULTS_FILE } from '../../eval/niah-results.js';
import { evaluateNiah } from '../../eval/niah-run.js';
import type { NiahReport } from '../../eval/niah-score.js';
import { ControlClient } from '../../orchestrator/cli/control-client.js';
import { startServer, type RunningServer } from '../../orchestrator/server.js';
import { longctx } from '../../proto/services.js';
import { waitFor } from '../helpers/control.js';
import { useRedis } from '../helpers/redis.js';

let server: RunningServer | undefined;
let client: ControlClient | undefined;
const redis = useRedis(test, {
  stopFirst: async () => {
    client?.close();
    await server?.stop();
  },
});
let root = '';
test.after.always(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

test('eval.niah evaluates the chosen checkpoints of a job and records the grid', async (t) => {
  root = await mkdtemp(join(tmpdir(), 'longctx-niah-job-'));
  await synth(join(root, 'corpus.jsonl'), { docs: 60, seed: 4 });
  const data = (await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 4 }))
    .indexPath;
  await writeFile(join(root, 'short.jsonl'), JSON.stringify({ text: 'a haystack of a few tokens' }) + '\n');
  const shortHaystack = (await pack({ inputs: [join(root, 'short.jsonl')], out: join(root, 'short.bin') }))
    .indexPath;
  server = await startServer({
    redisUrl: redis().url,
    grpcPort: 0,
    httpPort: null,
    runsDir: join(root, 'runs'),
    localAgent: { devices: 2, deviceMemoryBytes: 256 * 2 ** 20, measureSgemm: false },
    log: () => {},
  });
  client = new ControlClient(server.grpcAddress);
  const spec = (name: string, niah: string) => `
name: ${name}
model: { preset: tiny }
data: { path: ${data} }
seq_len: 512
devices: 2
steps: 4
checkpoint: { every: 2, keep: 3 }
eval:
  niah: ${niah}
`;
  const good = await client.submitJob(
    spec('niah-good', '{ at_steps: [2, 4], lengths: [384, 512], depths: [0, 0.5, 1], seed: 9 }'),
    join(root, 'good.yaml'),
  );
  const jobId = good.jobId;
  const history = server.history;
  const evaluations = await waitFor(
    'two NIAH evaluations',
    async () => {
      const e = await history.niahEvaluations(jobId);
      return e.length === 2 ? e : undefined;
    },
    240_000,
  );
  t.deepEqual(
    evaluations.map((e) => e.step),
    [2, 4],
  );
  for (const e of evaluations) {
    t.is(e.error, undefined);
    t.deepEqual(e.contextLengths, [384, 512]);
    t.deepEqual(e.depths, [0, 0.5, 1]);
    t.deepEqual(
      e.cells.map((c) => [c.contextLength, c.depth]),
      [384, 512].flatMap((l) => [0, 0.5, 1].map((d) => [l, d])),
    );
    t.is(e.accuracy, e.cells.filter((c) => c.found).length / 6);
    for (const c of e.cells) t.is(c.found, c.answerCorrect === c.answerTokens);
    // The file beside the checkpoint holds the same grid.
    const saved = JSON.parse(await readFile(join(e.checkpoint, NIAH_RESULTS_FILE), 'utf8')) as NiahReport & {
      settings: { ranks: number; seed: number; haystack: string };
    };
    t.true(e.checkpoint.endsWith(`step-${String(e.step).padStart(8, '0')}`), e.checkpoint);
    t.deepEqual(
      saved.cells.map((c) => c.answerCorrect),
      e.cells.map((c) => c.answerCorrect),
    );
    t.like(saved.settings, { ranks: 2, seed: 9, haystack: 'generated:0' });
  }
  // The same grid evaluated here on one rank gives the same scores: the server used the spec's grid.
  const last = evaluations[1]!;
  const cases = buildNiahCases({
    contextLengths: [384, 512],
    depths: [0, 0.5, 1],
    tokenizer: await openTokenizer('byte'),
    haystack: { kind: 'generated', seed: 0 },
    seed: 9,
  });
  const here = await evaluateNiah(cases, { checkpoint: last.checkpoint, ranks: 1 });
  t.deepEqual(
    here.map((c) => c.answerCorrect),
    last.cells.map((c) => c.answerCorrect),
  );

  // An evaluation that cannot run (a haystack file too short for the grid) is recorded with why;
  // the job itself finishes.
  const bad = await client.submitJob(
    spec('niah-bad', `{ lengths: [512], haystack: ${shortHaystack} }`),
    join(root, 'bad.yaml'),
  );
  const failed = await waitFor(
    'the failed NIAH evaluation',
    async () => (await history.niahEvaluations(bad.jobId))[0],
    240_000,
  );
  t.is(failed.step, 4);
  t.deepEqual(failed.cells, []);
  t.regex(failed.error ?? '', /^haystack .*short\.bin: has \d+ tokens, a case of 512 tokens needs \d+/);
  const detail = await waitFor('the bad job to finish', async () => {
    const d = await client!.getJob(bad.jobId);
    return d.summary?.state === longctx.JobState.JOB_STATE_SUCCEEDED ? d : undefined;
  });
  t.truthy(detail);
});
