// The worker end to end on real processes: train, checkpoint, stop, resume. Resume must be
// bit-exact (same loss at every step, byte-identical weights), also onto another world size
// (then within float32 rounding of the ring), and fall back past a corrupt checkpoint.
import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chooseResumeCheckpoint } from '../../checkpoints/validate.js';
import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import type { JobSpec } from '../../core/job-spec.js';
import { parseSpec } from '../../orchestrator/spec/validate.js';
import { useRedis } from '../helpers/redis.js';
import { expectSuccess, runGang, stepLog, type StepLine } from '../helpers/worker-gang.js';

const redis = useRedis(test);
let root = '';
let dataPath = '';

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'longctx-resume-'));
  await synth(join(root, 'corpus.jsonl'), { docs: 200, seed: 3, passkeyFraction: 0.2 });
  const packed = await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 3 });
  dataPath = packed.indexPath;
});

test.after.always(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

function spec(name: string, steps: number, extra = ''): JobSpec {
  const result = parseSpec(`
name: ${name}
model: { preset: tiny }
data: { path: ${dataPath} }
seq_len: 128
devices: 4
steps: ${steps}
grad_accumulation: 2
optimizer: { lr: 3.0e-3, weight_decay: 0.01 }
schedule: { kind: cosine, warmup_steps: 3, min_lr: 3.0e-4 }
checkpoint: { every: 5, keep: 3 }
activation_checkpointing: none
offload: none
${extra}`);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.spec;
}

let runs = 0;
function runDir(): string {
  return join(root, `run-${runs++}`);
}

const losses = (steps: StepLine[]) => steps.map((s) => s.loss);

for (const world of [1, 4]) {
  test(`stop at 10 and resume gives the same losses and byte-identical weights as 20 straight (N=${world})`, async (t) => {
    const s = spec(`straight-${world}`, 20);
    const straight = runDir();
    expectSuccess(
      t,
      await runGang(t, {
        spec: s,
        jobId: `straight-${world}`,
        attempt: 1,
        world,
        runDir: straight,
        redisUrl: redis().url,
      }),
    );

    const split = runDir();
    const job = `split-${world}`;
    expectSuccess(
      t,
      await runGang(t, {
        spec: s,
        jobId: job,
        attempt: 1,
        world,
        runDir: split,
        redisUrl: redis().url,
        stopAfterStep: 10,
      }),
    );
    const choice = await chooseResumeCheckpoint(join(split, 'checkpoints'));
    t.is(choice.checkpoint?.step, 10);
    expectSuccess(
      t,
      await runGang(t, {
        spec: s,
        jobId: job,
        attempt: 2,
        world,
        runDir: split,
        redisUrl: redis().url,
        resume: { step: 10, dir: choice.checkpoint!.dir },
      }),
    );

    const a = await stepLog(straight);
    const b = await stepLog(split);
    t.is(a.length, 20);
    t.deepEqual(
      b.map((x) => x.step),
      [...Array(20).keys()].map((i) => i + 1),
    );
    t.deepEqual(losses(b), losses(a), 'every step, bitwise');
    t.true(a[19]!.loss < a[0]!.loss);
    const final = (dir: string) => readFile(join(dir, 'checkpoints', 'step-00000020', 'model.safetensors'));
    t.true((await final(straight)).equals(await final(split)), 'final model.safetensors byte-identical');
  });
}

test('saved on 4 ranks, resumed on 2: training continues within float32 rounding of the 4-rank run', async (t) => {
  const s = spec('reshard', 20);
  const straight = runDir();
  expectSuccess(
    t,
    await runGang(t, {
      spec: s,
      jobId: 'reshard-a',
      attempt: 1,
      world: 4,
      runDir: straight,
      redisUrl: redis().url,
    }),
  );
  const moved = runDir();
  expectSuccess(
    t,
    await runGang(t, {
      spec: s,
      jobId: 'reshard-b',
      attempt: 1,
      world: 4,
      runDir: moved,
      redisUrl: redis().url,
      stopAfterStep: 10,
    }),
  );
  const choice = await chooseResumeCheckpoint(join(moved, 'checkpoints'));
  expectSuccess(
    t,
    await runGang(t, {
      spec: s,
      jobId: 'reshard-b',
      attempt: 2,
      world: 2,
      runDir: moved,
      redisUrl: redis().url,
      resume: { step: 10, dir: choice.checkpoint!.dir },
    }),
  );
  const a = await stepLog(straight);
  const b = await stepLog(moved);
  t.deepEqual(losses(b.slice(0, 10)), losses(a.slice(0, 10)));
  for (let i = 10; i < 20; i++) {
    const rel = Math.abs(b[i]!.loss - a[i]!.loss) / Math.abs(a[i]!.loss);
    t.true(
      rel <= 1e-4,
      `step ${i + 1}: 2-rank loss ${b[i]!.loss} vs 4-rank ${a[i]!.loss} (relative ${rel.toExponential(2)})`,
    );
  }
});

test('a corrupt newest checkpoint is skipped with a warning and training resumes from the one before', async (t) => {
  const s = spec('corrupt', 20);
  const straight = runDir();
  expectSuccess(
    t,
    await runGang(t, {
      spec: s,
      jobId: 'corrupt-a',
      attempt: 1,
      world: 1,
      runDir: straight,
      redisUrl: redis().url,
    }),
  );
  const dir = runDir();
  expectSuccess(
    t,
    await runGang(t, {
      spec: s,
      jobId: 'corrupt-b',
      attempt: 1,
      world: 1,
      runDir: dir,
      redisUrl: redis().url,
      stopAfterStep: 10,
    }),
  );
  const model = join(dir, 'checkpoints', 'step-00000010', 'model.safetensors');
  const bytes = await readFile(model);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
  await writeFile(model, bytes);
  const choice = await chooseResumeCheckpoint(join(dir, 'checkpoints'));
  t.is(choice.checkpoint?.step, 5);
  t.is(choice.warnings.length, 1);
  t.regex(choice.warnings[0]!, /step-00000010: model\.safetensors fails its sha256 check/);
  expectSuccess(
    t,
    await runGang(t, {
      spec: s,
      jobId: 'corrupt-b',
      attempt: 2,
      world: 1,
      runDir: dir,
      redisUrl: redis().url,
      resume: { step: 5, dir: choice.checkpoint!.dir },
    }),
  );
  const resumed = (await stepLog(dir)).filter((x) => x.attempt === 2);
  t.deepEqual(resumed.map((x) => x.step)[0], 6);
  t.deepEqual(losses(resumed), losses((await stepLog(straight)).slice(5)));
});

test('a resume on data re-packed since the checkpoint says so; its config.json names the trained context', async (t) => {
  // Its own data file: the other tests of this file run at the same time on the shared one.
  const corpus = join(root, 'repacked.bin');
  await pack({ inputs: [join(root, 'corpus.jsonl')], out: corpus, seed: 3 });
  const s = { ...spec('repacked', 10), data: { path: corpus } };
  const dir = runDir();
  expectSuccess(
    t,
    await runGang(t, {
      spec: s,
      jobId: 'repacked',
      attempt: 1,
      world: 1,
      runDir: dir,
      redisUrl: redis().url,
      stopAfterStep: 5,
    }),
  );
  const checkpoint = join(dir, 'checkpoints', 'step-00000005');
  const hf = JSON.parse(await readFile(join(checkpoint, 'config.json'), 'utf8')) as Record<string, unknown>;
  t.like(hf, {
    max_position_embeddings: 128,
    bos_token_id: 256,
    eos_token_id: 257,
    pad_token_id: 258,
    use_sliding_window: false,
    torch_dtype: 'float32',
  });
  const resume = { step: 5, dir: checkpoint };
  const same = await runGang(t, {
    spec: { ...s, steps: 6 },
    jobId: 'repacked',
    attempt: 2,
    world: 1,
    runDir: dir,
    redisUrl: redis().url,
    resume,
  });
  expectSuccess(t, same);
  t.notRegex(same[0]!.stdout, /warning: data/, 'the same data: no warning');

  // Edited in place behind its index's back: one token changed, same size.
  const tokens = await readFile(corpus);
  tokens.writeUInt32LE(tokens.readUInt32LE(400) === 65 ? 66 : 65, 400);
  await writeFile(corpus, tokens);
  const edited = await runGang(t, {
    spec: { ...s, steps: 6 },
    jobId: 'repacked',
    attempt: 3,
    world: 1,
    runDir: dir,
    redisUrl: redis().url,
    resume,
  });
  expectSuccess(t, edited);
  t.regex(
    edited[0]!.stdout,
    /warning: data .*repacked\.bin no longer matches the sha256 its index and checkpoint step 5 record .*replaced or modified after packing/,
  );

  await pack({ inputs: [join(root, 'corpus.jsonl')], out: corpus, seed: 4 });
  const repacked = await runGang(t, {
    spec: s,
    jobId: 'repacked',
    attempt: 4,
    world: 1,
    runDir: dir,
    redisUrl: redis().url,
    resume,
  });
  expectSuccess(t, repacked);
  t.regex(
    repacked[0]!.stdout,
    /warning: data .*repacked\.bin changed since checkpoint step 5 was saved: sha256 [0-9a-f]{12}… then, [0-9a-f]{12}… now \(re-packed\)/,
  );
});

test('a tiny model on the synthetic corpus clearly learns over 100 steps', async (t) => {
  const s = spec('learn', 100, '');
  const dir = runDir();
  const fast = {
    ...s,
    grad_accumulation: 1,
    checkpoint: { every: 100, keep: 1, keep_every: 0 },
    optimizer: { ...s.optimizer, lr: 3e-3 },
  };
  expectSuccess(
    t,
    await runGang(t, {
      spec: fast,
      jobId: 'learn',
      attempt: 1,
      world: 2,
      runDir: dir,
      redisUrl: redis().url,
    }),
  );
  const steps = await stepLog(dir);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(losses(steps.slice(0, 10)));
  const last = mean(losses(steps.slice(-10)));
  t.log(
    `loss: first 10 steps ${first.toFixed(3)}, last 10 steps ${last.toFixed(3)} (ln 259 = ${Math.log(259).toFixed(3)})`,
  );
  t.true(last < first - 1.0, `loss fell only from ${first} to ${last}`);
});
