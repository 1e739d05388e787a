// model.init_weights end to end on real worker processes: a job starts from a Hugging Face folder
// (a checkpoint of an earlier job, as our own folder and re-written in Hugging Face's sharded
// layout) and trains exactly alike from both.
import test from 'ava';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readSafetensors, writeSafetensors } from '../../checkpoints/safetensors.js';
import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import type { JobSpec } from '../../core/job-spec.js';
import { parseSpec } from '../../orchestrator/spec/validate.js';
import { useRedis } from '../helpers/redis.js';
import { expectSuccess, runGang, stepLog } from '../helpers/worker-gang.js';

const redis = useRedis(test);
let root = '';
let dataPath = '';

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'longctx-init-'));
  await synth(join(root, 'corpus.jsonl'), { docs: 100, seed: 4, passkeyFraction: 0.2 });
  dataPath = (await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 4 }))
    .indexPath;
});

test.after.always(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

function spec(name: string, steps: number, init?: string): JobSpec {
  const result = parseSpec(`
name: ${name}
model: { preset: tiny${init ? `, init_weights: ${init}` : ''} }
data: { path: ${dataPath} }
seq_len: 64
devices: 2
steps: ${steps}
optimizer: { lr: 3.0e-3 }
checkpoint: { every: 4, keep: 1 }
activation_checkpointing: none
offload: none
`);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.spec;
}

async function train(t: Parameters<typeof runGang>[0], name: string, s: JobSpec) {
  const runDir = join(root, name);
  const exits = await runGang(t, {
    spec: s,
    jobId: name,
    attempt: 1,
    world: 2,
    runDir,
    redisUrl: redis().url,
  });
  return { runDir, exits };
}

test('a job starts from init_weights (our checkpoint folder or an HF sharded one) and trains identically from both', async (t) => {
  const first = await train(t, 'first', spec('first', 4));
  expectSuccess(t, first.exits);
  const ckpt = join(first.runDir, 'checkpoints', 'step-00000004');

  // The same weights in Hugging Face's sharded layout: two shards and an index.
  const hf = join(root, 'hf');
  await mkdir(hf);
  await writeFile(join(hf, 'config.json'), await readFile(join(ckpt, 'config.json')));
  const { header, tensors } = await readSafetensors(join(ckpt, 'model.safetensors'));
  const names = [...tensors.keys()];
  const weightMap: Record<string, string> = {};
  for (const [s, part] of [names.slice(0, 5), names.slice(5)].entries()) {
    const file = `model-0000${s + 1}-of-00002.safetensors`;
    for (const n of part) weightMap[n] = file;
    await writeSafetensors(
      join(hf, file),
      part.map((n) => ({
        name: n,
        dtype: 'F32',
        shape: header.tensors.get(n)!.shape,
        data: tensors.get(n)!,
      })),
    );
  }
  await writeFile(join(hf, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));

  const fromOurs = await train(t, 'from-ours', spec('from-ours', 3, ckpt));
  expectSuccess(t, fromOurs.exits);
  const fromHf = await train(t, 'from-hf', spec('from-hf', 3, hf));
  expectSuccess(t, fromHf.exits);
  const fresh = await train(t, 'fresh', spec('fresh', 3));
  expectSuccess(t, fresh.exits);
  t.regex(fromHf.exits[0]!.stdout, /initial weights from the Hugging Face checkpoint .*\/hf/);

  const losses = async (runDir: string) => (await stepLog(runDir)).map((s) => s.loss);
  const [ours, theirs, scratch, trained] = await Promise.all([
    losses(fromOurs.runDir),
    losses(fromHf.runDir),
    losses(fresh.runDir),
    losses(first.runDir),
  ]);
  t.log(
    'first job',
    trained.map((l) => l.toFixed(4)).join(' '),
    '| from its weights',
    ours.map((l) => l.toFixed(4)).join(' '),
  );
  t.deepEqual(theirs, ours, 'bitwise the same losses from both folders');
  t.is(ours.length, 3);
  t.not(ours[0], scratch[0], 'the initial weights were used, not the seed init');
  t.true(ours[0]! < scratch[0]!, 'starting from trained weights, the first loss is lower');
});

test('init_weights that disagree with the job model fail the job naming the field', async (t) => {
  const hf = join(root, 'wrong');
  await mkdir(hf);
  await writeFile(
    join(hf, 'config.json'),
    JSON.stringify({
      model_type: 'qwen2',
      hidden_size: 96,
      intermediate_size: 128,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      num_hidden_layers: 2,
      vocab_size: 259,
    }),
  );
  const run = await train(t, 'wrong', spec('wrong', 2, hf));
  for (const e of run.exits) {
    t.is(e.code, 1);
    t.regex(e.stderr, /wrong\/config\.json: hidden_size is 96 but the job's model has 64/);
  }
});
