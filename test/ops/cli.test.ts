// The CLI against a real `longctx server` (started through the CLI, with its private Redis and
// a node agent of 8 emulated CPU devices running the real worker on the tiny model): submit,
// watch, ls, show, logs, checkpoints and cancel, each one's happy path with --json parsed and its
// main errors with their exit codes; and the server stopping cleanly on SIGTERM.
import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { waitFor } from '../helpers/control.js';
import { parseJson, runCli, startCliServer, type CliServer } from './cli-process.js';

let dir = '';
let server: CliServer | undefined;
const runs = () => join(dir, 'runs');

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'longctx-cli-server-'));
  const synth = await runCli([
    'data',
    'synth',
    '--out',
    join(dir, 'synth.jsonl'),
    '--docs',
    '40',
    '--seed',
    '1',
  ]);
  if (synth.code !== 0) throw new Error(synth.stderr);
  const pack = await runCli(['data', 'pack', '--out', join(dir, 'corpus.tokens'), join(dir, 'synth.jsonl')]);
  if (pack.code !== 0) throw new Error(pack.stderr);
  server = await startCliServer(['--port', '0', '--http-port', '0', '--runs', runs(), '--devices', '8']);
});

test.after.always(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

function spec(name: string, steps: number, extra = ''): string {
  return `name: ${name}
model: { preset: tiny }
data: { path: corpus.tokens }
seq_len: 64
devices: 8
steps: ${steps}
checkpoint: { every: 3, keep: 2 }
${extra}`;
}

async function specFile(name: string, text: string): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  await writeFile(path, text);
  return path;
}

const at = () => ['--server', server!.grpcAddress];

interface JobSummaryJson {
  id: string;
  name: string;
  state: string;
  step: number;
  totalSteps: number;
  loss: number;
  restarts: number;
  devices: number;
}

test.serial('the server started its own Redis and said where, and where its dashboard is', (t) => {
  const output = server!.output();
  t.regex(output, /started a private redis-server at redis:\/\/127\.0\.0\.1:\d+/);
  t.regex(output, /dashboard: http:\/\/127\.0\.0\.1:\d+/);
  t.regex(output, /8 cpu devices/);
});

test.serial('submit → watch → ls → show → logs → checkpoints for a job that trains to the end', async (t) => {
  const submitted = await runCli(['submit', await specFile('short', spec('short', 6)), '--json', ...at()]);
  t.is(submitted.code, 0, submitted.stderr);
  const answer = parseJson<{
    accepted: boolean;
    jobId: string;
    plan: { shards: unknown[] };
    errors: unknown[];
  }>(submitted);
  t.true(answer.accepted);
  t.regex(answer.jobId, /^short-\d+-[0-9a-f]{4}$/);
  t.is(answer.plan.shards.length, 8);
  const id = answer.jobId;

  const watched = await runCli(['watch', id, '--json', ...at()], { timeoutMs: 120_000 });
  t.is(watched.code, 0, watched.stderr);
  const updates = watched.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; state?: string; step?: number; loss?: number });
  t.is(updates.at(-1)?.type, 'summary');
  t.is(updates.at(-1)?.state, 'SUCCEEDED');
  for (const u of updates.filter((u) => u.type === 'step')) t.true(Number.isFinite(u.loss) && u.loss! > 0);

  // Watching an ended job prints its summary and exits with how it ended.
  const again = await runCli(['watch', id, ...at()]);
  t.is(again.code, 0);
  t.regex(again.stdout, /SUCCEEDED \| \[#+\] 6\/6 100%/);

  const listed = parseJson<{ jobs: JobSummaryJson[] }>(await runCli(['ls', '--json', ...at()]));
  const row = listed.jobs.find((j) => j.id === id);
  t.like(row, { name: 'short', state: 'SUCCEEDED', step: 6, totalSteps: 6, restarts: 0, devices: 8 });
  const filtered = parseJson<{ jobs: JobSummaryJson[] }>(
    await runCli(['ls', '--state', 'running,queued', '--json', ...at()]),
  );
  t.false(filtered.jobs.some((j) => j.id === id));
  const table = await runCli(['ls', ...at()]);
  t.regex(table.stdout, new RegExp(`^${id} +SUCCEEDED +6/6 `, 'm'));

  const shown = await runCli(['show', id, '--json', ...at()]);
  t.is(shown.code, 0, shown.stderr);
  const detail = parseJson<{
    summary: JobSummaryJson;
    plan: { perRank: { total: number }; shards: unknown[] };
    checkpoints: { step: number; valid: boolean; bytes: number }[];
    recentSteps: { step: number }[];
  }>(shown);
  t.is(detail.summary.state, 'SUCCEEDED');
  t.true(detail.plan.perRank.total > 0);
  t.deepEqual(
    detail.recentSteps.map((s) => s.step),
    [1, 2, 3, 4, 5, 6],
  );
  t.deepEqual(
    detail.checkpoints.map((c) => c.step),
    [3, 6],
  );
  const shownText = await runCli(['show', id, ...at()]);
  t.regex(shownText.stdout, /zigzag shards: 16 chunks of 4 tokens/);
  t.regex(shownText.stdout, /SUCCEEDED for \S+, last step \S+ ago/);

  const logs = await runCli(['logs', id, '--runs', runs(), '--json']);
  t.is(logs.code, 0, logs.stderr);
  const lines = logs.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { rank: number; line: string });
  t.deepEqual([...new Set(lines.map((l) => l.rank))].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  t.true(lines.some((l) => l.rank === 5 && /step 6 loss/.test(l.line)));
  const rank3 = await runCli(['logs', id, '--runs', runs(), '--rank', '3']);
  t.is(rank3.stdout, await readFile(join(runs(), id, 'logs', 'rank-3.log'), 'utf8'));
  // Following a job that has ended prints its logs and returns.
  const followed = await runCli(['logs', id, '--runs', runs(), '-f', '--rank', '0', ...at()]);
  t.is(followed.code, 0);
  t.regex(followed.stdout, /finished at step 6/);

  const checkpoints = await runCli(['checkpoints', id, '--runs', runs(), '--json']);
  t.is(checkpoints.code, 0, checkpoints.stderr);
  const listing = parseJson<{ checkpoints: { step: number; valid: boolean; bytes: number; path: string }[] }>(
    checkpoints,
  );
  t.deepEqual(
    listing.checkpoints.map((c) => [c.step, c.valid]),
    [
      [6, true],
      [3, true],
    ],
  );
  t.true(listing.checkpoints.every((c) => c.bytes > 0));
  // show (the server: manifests only) and checkpoints (every byte) give one size and one vocabulary.
  const shownSizes = detail.checkpoints.map((c) => [c.step, c.bytes]);
  t.deepEqual(
    shownSizes,
    [...listing.checkpoints].reverse().map((c) => [c.step, c.bytes]),
  );
  const listed6 = (await runCli(['checkpoints', id, '--runs', runs()])).stdout;
  const size6 = /^6 +valid +(\S+ \S+) /m.exec(listed6)?.[1];
  t.truthy(size6, listed6);
  t.regex(shownText.stdout, new RegExp(`^  6 +published +${size6!.replace('.', '\\.')} `, 'm'));
  // One flipped byte: the newest no longer verifies, and says which file and why.
  const model = join(listing.checkpoints[0]!.path, 'model.safetensors');
  const bytes = await readFile(model);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
  await writeFile(model, bytes);
  const after = parseJson<{ checkpoints: { step: number; valid: boolean; reason: string }[] }>(
    await runCli(['checkpoints', id, '--runs', runs(), '--json']),
  );
  t.like(after.checkpoints[0], { step: 6, valid: false, reason: 'model.safetensors fails its sha256 check' });
  t.like(after.checkpoints[1], { step: 3, valid: true });
});

test.serial('submit refuses an invalid spec with exit 5 and every bad field named', async (t) => {
  const path = await specFile(
    'broken',
    spec('broken', 6, 'precision: fp8\n').replace('devices: 8', 'devices: 9'),
  );
  const r = await runCli(['submit', path, ...at()]);
  t.is(r.code, 5);
  t.regex(r.stderr, /the server refused .*broken\.yaml/);
  t.regex(r.stderr, /broken\.yaml: precision: /);
  const json = parseJson<{ accepted: boolean; errors: { path: string; reason: string }[] }>(
    await runCli(['submit', path, '--json', ...at()]),
  );
  t.false(json.accepted);
  t.true(json.errors.some((e) => e.path === 'precision'));
  const missingData = await specFile('nodata', spec('nodata', 6).replace('corpus.tokens', 'absent.tokens'));
  const noData = await runCli(['submit', missingData, ...at()]);
  t.is(noData.code, 5);
  t.regex(noData.stderr, /data\.path: /);
});

test.serial(
  'cancel stops a job (watch then exits 7); cancelling it again exits 5; an unknown job exits 4',
  async (t) => {
    const submitted = parseJson<{ jobId: string }>(
      await runCli(['submit', await specFile('long', spec('long', 100_000)), '--json', ...at()]),
    );
    const id = submitted.jobId;
    const cancelled = await runCli(['cancel', id, '--json', ...at()]);
    t.is(cancelled.code, 0, cancelled.stderr);
    const answer = parseJson<{ cancelled: boolean; previousState: string; message: string }>(cancelled);
    t.true(answer.cancelled);
    t.true(['QUEUED', 'PLACED', 'RUNNING'].includes(answer.previousState), answer.previousState);
    const watched = await runCli(['watch', id, ...at()], { timeoutMs: 120_000 });
    t.is(watched.code, 7, watched.stdout + watched.stderr);
    t.regex(watched.stdout, /CANCELLED/);

    const twice = await runCli(['cancel', id, ...at()]);
    t.is(twice.code, 5);
    t.regex(twice.stderr, /cannot cancel .*already CANCELLED/);

    for (const argv of [['cancel'], ['show'], ['watch']]) {
      const r = await runCli([...argv, 'nobody-1-0000', ...at()]);
      t.is(r.code, 4, argv[0]);
      t.regex(r.stderr, /no job 'nobody-1-0000'.*'longctx ls' lists the jobs/, argv[0]);
    }
    const noRun = await runCli(['logs', 'nobody-1-0000', '--runs', runs()]);
    t.is(noRun.code, 4);
    t.regex(noRun.stderr, /no run folder for nobody-1-0000/);
    const noCheckpoints = await runCli(['checkpoints', 'nobody-1-0000', '--runs', runs()]);
    t.is(noCheckpoints.code, 4);
  },
);

test.serial('resume queues a cancelled job again and it continues from its newest checkpoint', async (t) => {
  const { jobId: id } = parseJson<{ jobId: string }>(
    await runCli(['submit', await specFile('resumable', spec('resumable', 100_000)), '--json', ...at()]),
  );
  const summary = async () =>
    parseJson<{ jobs: JobSummaryJson[] }>(await runCli(['ls', '--json', ...at()])).jobs.find(
      (j) => j.id === id,
    )!;
  await waitFor('step 7 of the resumable job', async () => (await summary()).step >= 7, 60_000);
  t.is((await runCli(['cancel', id, ...at()])).code, 0);
  t.is((await runCli(['watch', id, ...at()], { timeoutMs: 120_000 })).code, 7);
  const newest = parseJson<{ checkpoints: { step: number; valid: boolean }[] }>(
    await runCli(['checkpoints', id, '--runs', runs(), '--json']),
  ).checkpoints[0]!;
  t.true(newest.valid && newest.step >= 6, JSON.stringify(newest));

  const resumed = await runCli(['resume', id, '--json', ...at()]);
  t.is(resumed.code, 0, resumed.stderr);
  const answer = parseJson<{ resumed: boolean; previousState: string; fromStep: number; checkpoint: string }>(
    resumed,
  );
  t.like(answer, { resumed: true, previousState: 'CANCELLED', fromStep: newest.step });
  // Followed as plain lines (no terminal) from here until it is cancelled again. (Whether it
  // connects before the resume event is a race: the resume wording is checked through show --json.)
  const plainWatch = runCli(['watch', id, ...at()], { timeoutMs: 180_000 });
  t.is(answer.checkpoint, join(runs(), id, 'checkpoints', `step-${String(newest.step).padStart(8, '0')}`));
  // Same id, next attempt, and the workers say they resumed from that step, then train past it.
  await waitFor(
    'the resumed attempt to report',
    async () => {
      const detail = parseJson<{
        summary: JobSummaryJson & { attempt: number };
        events: { kind: string; message: string }[];
      }>(await runCli(['show', id, '--json', ...at()]));
      return detail.summary.attempt === 2 && detail.events.some((e) => e.kind === 'resumed');
    },
    60_000,
  );
  // The resume says which attempt it is and the step it continues from, at that step.
  const resumedEvents = parseJson<{ events: { kind: string; step: number; message: string }[] }>(
    await runCli(['show', id, '--json', ...at()]),
  ).events.filter((e) => e.kind === 'resumed');
  t.true(resumedEvents.length > 0);
  for (const e of resumedEvents) {
    t.is(e.step, newest.step);
    t.regex(
      e.message,
      new RegExp(`^attempt 2 continues from step ${newest.step} \\(checkpoint saved on 8 ranks\\)$`),
    );
  }
  const log = await waitFor(
    "a step after the resume in rank 0's log",
    async () => {
      const text = await readFile(join(runs(), id, 'logs', 'rank-0.log'), 'utf8');
      const after = text.slice(text.lastIndexOf('resumed from '));
      return new RegExp(`step ${newest.step + 1} loss`).test(after) ? after : undefined;
    },
    60_000,
  );
  t.true(log.startsWith(`resumed from ${answer.checkpoint} (step ${newest.step},`), log.split('\n')[0]);
  const again = await runCli(['resume', id, ...at()]);
  t.is(again.code, 5);
  t.regex(again.stderr, /cannot resume .*: it is (QUEUED|PLACED|RUNNING), not ended/);
  t.is((await runCli(['cancel', id, ...at()])).code, 0);
  t.is((await runCli(['watch', id, ...at()], { timeoutMs: 120_000 })).code, 7);
  const plain = await plainWatch;
  t.is(plain.code, 7, plain.stderr);
  t.regex(plain.stdout, /: step \d+: checkpoint \d+ \(rank \d\)\n/);
  const plainLines = plain.stdout.trimEnd().split('\n');
  t.true(
    plainLines.every((line, i) => i === 0 || line !== plainLines[i - 1]),
    `no line twice in a row:\n${plain.stdout}`,
  );

  const succeeded = parseJson<{ jobs: JobSummaryJson[] }>(
    await runCli(['ls', '--state', 'succeeded', '--json', ...at()]),
  );
  const done = await runCli(['resume', succeeded.jobs[0]!.id, ...at()]);
  t.is(done.code, 5);
  t.regex(done.stderr, /it already finished all its steps/);
  const unknown = await runCli(['resume', 'nobody-1-0000', ...at()]);
  t.is(unknown.code, 4);
});

test.serial(
  "--server at the dashboard's HTTP port says it answers HTTP, and which port is gRPC",
  async (t) => {
    const httpAddress = new URL(server!.httpUrl).host;
    const grpcPort = server!.grpcAddress.split(':').at(-1)!;
    const r = await runCli(['ls', '--server', httpAddress]);
    t.is(r.code, 3, r.stderr);
    t.is(
      r.stderr.trim(),
      `error: ${httpAddress} answers HTTP, not gRPC (it looks like the dashboard's HTTP port): this server's gRPC port is ${grpcPort}: use --server 127.0.0.1:${grpcPort}`,
    );
  },
);

test.serial('data pack refuses to replace the data of resumable jobs unless --force', async (t) => {
  const corpus = join(dir, 'corpus.tokens');
  const before = await readFile(corpus);
  const refused = await runCli(['data', 'pack', '--out', corpus, join(dir, 'synth.jsonl'), ...at()]);
  t.is(refused.code, 1, refused.stderr);
  // The cancelled jobs of the tests above read it and could be resumed.
  t.regex(
    refused.stderr,
    new RegExp(
      `^error: ${corpus.replace(/[.]/g, '\\.')} is the data of \\d+ jobs that may still read it: .*resumable-\\S+ \\(CANCELLED at step \\d+ of 100000: resumable\\).*pack to another path, or pass --force\n$`,
    ),
  );
  t.regex(refused.stderr, /long-\S+ \(CANCELLED at step \d+ of 100000: resumable\)/);
  t.notRegex(refused.stderr, /short-/, 'a job that finished reads it no more');
  t.true((await readFile(corpus)).equals(before), 'the file is untouched');
  const elsewhere = await runCli([
    'data',
    'pack',
    '--out',
    join(dir, 'other.tokens'),
    join(dir, 'synth.jsonl'),
    ...at(),
  ]);
  t.is(elsewhere.code, 0, elsewhere.stderr);
  const forced = await runCli([
    'data',
    'pack',
    '--out',
    corpus,
    join(dir, 'synth.jsonl'),
    '--force',
    ...at(),
  ]);
  t.is(forced.code, 0, forced.stderr);
});

test.serial('logs names the ranks that have logs when asked for one that has none', async (t) => {
  const listed = parseJson<{ jobs: JobSummaryJson[] }>(
    await runCli(['ls', '--state', 'succeeded', '--json', ...at()]),
  );
  const id = listed.jobs[0]!.id;
  const r = await runCli(['logs', id, '--runs', runs(), '--rank', '12']);
  t.is(r.code, 4);
  t.regex(r.stderr, /rank 12 of .* has no log \(ranks with logs: 0, 1, 2, 3, 4, 5, 6, 7\)/);
});

test.serial('the server stops on SIGTERM: gangs first, then everything it started, exit 0', async (t) => {
  const code = await server!.stop();
  t.is(code, 0);
  t.regex(server!.output(), /stopping: ending running gangs, then the server\n[\s\S]*stopped\n/);
  const unreachable = await runCli(['ls', ...at()]);
  t.is(unreachable.code, 3);
});
