// The CLI's commands that need no server, through the real binary: help everywhere, usage errors
// (exit 2), an unreachable server (exit 3), `plan` on this machine's devices (happy path, invalid
// spec, a spec that does not fit), and `data synth|pack|check`.
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort } from '../../cluster/embedded-redis.js';
import { COMMANDS } from '../../orchestrator/cli/cli.js';
import { repoRoot } from '../../core/repo-root.js';
import { parseJson, runCli } from './cli-process.js';

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'longctx-cli-'));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

const SPEC = (extra = '') => `name: planned
model: { preset: tiny }
data: { path: corpus.tokens }
seq_len: 64
devices: 8
steps: 10
${extra}`;

async function specFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

test('--help works for the CLI and for every command, and says how exit codes read', async (t) => {
  const top = await runCli(['--help']);
  t.is(top.code, 0);
  for (const c of [...COMMANDS.map((c) => c.name), 'data']) t.regex(top.stdout, new RegExp(`\\n  ${c} `));
  t.regex(top.stdout, /Exit codes:/);
  for (const c of COMMANDS) {
    const r = await runCli([c.name, '--help']);
    t.is(r.code, 0, c.name);
    t.true(r.stdout.startsWith(`Usage: longctx ${c.name}`), c.name);
    t.regex(r.stdout, /Exit codes:/, c.name);
  }
  const data = await runCli(['data', 'synth', '-h']);
  t.is(data.code, 0);
  t.true(data.stdout.startsWith('Usage: longctx data synth'));
});

test('usage errors exit 2 and say what to do', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /Usage: longctx <command>/],
    [['frobnicate'], /unknown command 'frobnicate' \(commands: server, agent, submit, .*data\)/],
    [['ls', '--frob'], /unknown option --frob for 'ls'\nRun 'longctx ls --help' for usage/],
    [['ls', 'extra'], /'ls' takes no arguments, got an extra 'extra'/],
    [['ls', '--state', 'sleeping'], /--state: 'sleeping' is not a job state \(states: QUEUED, PLACED/],
    [['show'], /'show' needs JOB/],
    [['submit', join(dir, 'missing.yaml')], /spec file .*missing\.yaml does not exist/],
    [['logs', 'job', '--rank', '-1'], /--rank must be an integer >= 0, got '-1'/],
    [['logs', '../etc'], /'\.\.\/etc' is not a job id/],
    [['server', '--port', '70000'], /--port must be a port/],
    [['server', '--no-agent', '--devices', '4'], /--no-agent runs no agent here: drop --devices/],
    [['server', '--device-memory', 'lots'], /--device-memory must be a byte count/],
  ];
  for (const [argv, message] of cases) {
    const r = await runCli(argv);
    t.is(r.code, 2, argv.join(' '));
    t.regex(r.stderr, message, argv.join(' '));
  }
});

test('a command that needs the server exits 3 and says how to start one when none answers', async (t) => {
  const port = await freePort();
  for (const argv of [['ls'], ['show', 'some-job'], ['cancel', 'some-job'], ['watch', 'some-job']]) {
    const r = await runCli([...argv, '--server', `127.0.0.1:${port}`], { timeoutMs: 60_000 });
    t.is(r.code, 3, argv.join(' '));
    t.regex(
      r.stderr,
      new RegExp(`cannot reach the longctx server at 127\\.0\\.0\\.1:${port}.*'longctx server'`),
      argv[0],
    );
  }
  const env = await runCli(['ls', '--json'], { env: { LONGCTX_SERVER: `127.0.0.1:${port}` } });
  t.is(env.code, 3);
  t.is(env.stdout, '');
});

test('plan: per-rank memory, policy, zigzag shards, time and max context for this machine, offline', async (t) => {
  const spec = await specFile('ok.yaml', SPEC());
  const json = await runCli(['plan', spec, '--json', '--no-gpu', '--sgemm-gflops', '10', '--max-context']);
  t.is(json.code, 0, json.stderr);
  const out = parseJson<{
    feasible: boolean;
    source: string;
    device: { kind: string; devices: number; peakFlops: number };
    plan: {
      activationCheckpointing: string;
      perRank: Record<string, number>;
      peakBytes: number;
      budgetBytes: number;
      stepSeconds: number;
      totalSeconds: number;
      shards: { rank: number; chunks: number[]; starts: number[]; chunkTokens: number }[];
    };
    maxSeqLen: number;
    errors: unknown[];
  }>(json);
  t.true(out.feasible);
  t.is(out.source, 'local');
  // 8 emulated devices share this machine's cores: each gets cores / 8 of the rate (at most all).
  t.like(out.device, { kind: 'cpu', devices: 8, peakFlops: 10e9 * Math.min(1, cpus().length / 8) });
  // The breakdown is what was live at the peak: it sums to the peak.
  t.is(
    Object.values(out.plan.perRank).reduce((a, b) => a + b, 0),
    out.plan.peakBytes,
  );
  t.true(out.plan.peakBytes <= 0.9 * out.plan.budgetBytes);
  t.is(out.plan.activationCheckpointing, 'none', 'the fastest policy fits the tiny model');
  t.true(Math.abs(out.plan.totalSeconds - 10 * out.plan.stepSeconds) < 1e-9 * out.plan.totalSeconds);
  t.deepEqual(
    out.plan.shards.map((s) => [s.rank, s.chunks, s.starts, s.chunkTokens]),
    Array.from({ length: 8 }, (_, r) => [r, [r, 15 - r], [4 * r, 4 * (15 - r)], 4]),
  );
  t.true(out.maxSeqLen >= 64 && out.maxSeqLen % 16 === 0, `max context ${out.maxSeqLen}`);
  t.deepEqual(out.errors, []);

  const text = await runCli(['plan', spec, '--no-gpu', '--sgemm-gflops', '10']);
  t.is(text.code, 0);
  t.regex(text.stdout, /^fits$/m);
  t.regex(text.stdout, /policy: activation_checkpointing=none, offload=none/);
  t.regex(text.stdout, /rank {2}7: chunks 7, 8 +tokens \[28, 32\) \+ \[32, 36\)/);
  t.regex(text.stdout, /time: .* per step, .* in all \(10 steps\)/);
});

test("plan --device: the seed's LongVA job (Qwen2-7B, 224K tokens) on 8 datasheet H200s", async (t) => {
  const spec = join(repoRoot, 'examples', 'longva-qwen2-7b-224k.yaml');
  const r = await runCli(['plan', spec, '--device', 'H200-141GB', '--json']);
  t.is(r.code, 0, r.stderr);
  const out = parseJson<{
    feasible: boolean;
    device: { kind: string; devices: number; memoryBytes: number; peakFlops: number };
    plan: {
      peakBytes: number;
      perRank: Record<string, number>;
      shards: { chunkTokens: number }[];
      stepSeconds: number;
    };
  }>(r);
  t.true(out.feasible);
  t.like(out.device, { kind: 'cuda', devices: 8, memoryBytes: 141 * 2 ** 30, peakFlops: 989e12 });
  t.true(out.plan.peakBytes <= 0.9 * 141 * 2 ** 30);
  t.is(
    Object.values(out.plan.perRank).reduce((a, b) => a + b, 0),
    out.plan.peakBytes,
  );
  t.deepEqual(
    out.plan.shards.map((s) => s.chunkTokens),
    new Array<number>(8).fill(224_000 / 16),
  );
  t.is(
    (out as { missingDevices?: unknown }).missingDevices,
    null,
    '8 datasheet H200s have what the spec names',
  );
  const unknown = await runCli(['plan', spec, '--device', 'Z80']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /--device: 'Z80' is not a known GPU \(A100-80GB, H100-80GB, H200-141GB\)/);
});

test("plan: the seed's job names 8 × H200; without them here it is planned for them, and exits 8", async (t) => {
  const spec = join(repoRoot, 'examples', 'longva-qwen2-7b-224k.yaml');
  const r = await runCli(['plan', spec, '--no-gpu']);
  t.is(r.code, 8, r.stderr);
  t.regex(r.stdout, /^datasheet: 8 × H200-141GB \(141\.00 GiB, 989\.000 TFLOP\/s peak each\)$/m);
  t.regex(r.stdout, /^fits$/m);
  t.regex(
    r.stdout,
    /^this node lacks the devices the spec names: it needs 8 × H200 and .+ has 8 emulated CPU devices/m,
  );
  t.regex(r.stderr, /resources\.accelerators: 8 × H200 on one node needed, but no node has them/);
  const json = parseJson<{ feasible: boolean; missingDevices: { name: string; count: number } }>(
    await runCli(['plan', spec, '--no-gpu', '--json']),
  );
  t.false(json.feasible);
  t.like(json.missingDevices, { name: 'H200', count: 8 });
});

test('plan: an invalid spec exits 5 naming each field; one that cannot fit exits 5 with the change that would', async (t) => {
  const invalid = await specFile('bad.yaml', SPEC('precision: fp8\nlr_schedule: fast\n'));
  const bad = await runCli(['plan', invalid, '--no-gpu', '--sgemm-gflops', '10']);
  t.is(bad.code, 5);
  t.regex(bad.stderr, /bad\.yaml: precision: /);
  t.regex(bad.stderr, /bad\.yaml: lr_schedule: /);
  const badJson = parseJson<{ feasible: boolean; errors: { path: string }[] }>(
    await runCli(['plan', invalid, '--json', '--no-gpu', '--sgemm-gflops', '10']),
  );
  t.false(badJson.feasible);
  t.deepEqual(badJson.errors.map((e) => e.path).sort(), ['lr_schedule', 'precision']);

  const huge = await specFile(
    'huge.yaml',
    SPEC('device_memory: 4194304\n').replace('seq_len: 64', 'seq_len: 65536'),
  );
  const r = await runCli(['plan', huge, '--no-gpu', '--sgemm-gflops', '10']);
  t.is(r.code, 5);
  t.regex(r.stdout, /does NOT fit/);
  t.regex(r.stdout, /to fit: needs .* per device at best/);
  t.regex(r.stderr, /huge\.yaml cannot run as written/);
});

test('data synth, pack and check run under longctx data with --json', async (t) => {
  const corpus = join(dir, 'synth.jsonl');
  const synth = await runCli(['data', 'synth', '--out', corpus, '--docs', '12', '--seed', '5', '--json']);
  t.is(synth.code, 0, synth.stderr);
  t.is(parseJson<{ documents: number }>(synth).documents, 12);
  const pack = await runCli(['data', 'pack', '--out', join(dir, 'corpus.tokens'), corpus, '--json']);
  t.is(pack.code, 0, pack.stderr);
  t.is(parseJson<{ documents: { kept: number } }>(pack).documents.kept, 12);
  const check = await runCli(['data', 'check', join(dir, 'corpus.tokens'), '--seq-len', '64', '--json']);
  t.is(check.code, 0, check.stderr);
  t.true(parseJson<{ ok: boolean }>(check).ok);
  const missing = await runCli(['data', 'check', join(dir, 'nope.tokens'), '--seq-len', '64']);
  t.is(missing.code, 1);
});
