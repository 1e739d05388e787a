import test from 'ava';
import { join } from 'node:path';

import { loadSpecFile, parseSpec } from '../../orchestrator/spec/validate.js';
import { parameterCount, MODEL_PRESETS } from '../../core/model-config.js';
import { repoRoot } from '../../core/repo-root.js';

const base = `
name: t
model: { preset: tiny }
data: { path: corpus.tokens }
seq_len: 64
devices: 4
steps: 10
`;

function errorsOf(yaml: string): string[] {
  const result = parseSpec(yaml);
  return result.ok ? [] : result.errors.map((e) => `${e.path}: ${e.reason}`);
}

test('the seed job validates with its numbers', (t) => {
  const result = loadSpecFile(join(repoRoot, 'examples/longva-qwen2-7b-224k.yaml'));
  if (!result.ok) return t.fail(result.errors.map((e) => `${e.path}: ${e.reason}`).join('\n'));
  const s = result.spec;
  t.is(s.seq_len, 224000);
  t.is(s.devices, 8);
  t.deepEqual(s.resources, { accelerators: { name: 'H200', count: 8 } });
  t.is(s.model.config.rope_theta, 1e9);
  t.is(s.optimizer.lr, 1e-5);
  t.is(s.schedule.kind, 'constant');
  t.is(s.grad_accumulation, 4);
  t.is(s.steps, 1000);
  t.is(s.checkpoint.every, 200);
  t.is(s.model.config.num_key_value_heads, 4);
});

test('Qwen2-7B has about 7.6 billion parameters', (t) => {
  const n = parameterCount(MODEL_PRESETS['qwen2-7b']!);
  t.true(Math.abs(n - 7.615e9) / 7.615e9 < 0.002, `${n}`);
});

test('defaults fill what a minimal spec leaves out', (t) => {
  const result = parseSpec(base);
  if (!result.ok) return t.fail(JSON.stringify(result.errors));
  t.is(result.spec.activation_checkpointing, 'auto');
  t.is(result.spec.offload, 'auto');
  t.is(result.spec.grad_accumulation, 1);
  t.is(result.spec.max_restarts, 3);
  t.true(result.spec.data.path.endsWith('/corpus.tokens'));
});

test('a token budget becomes steps', (t) => {
  const result = parseSpec(base.replace('steps: 10', 'tokens: 1000\ngrad_accumulation: 2'));
  t.true(result.ok && result.spec.steps === Math.ceil(1000 / (64 * 2)));
});

const invalid: [string, string, RegExp][] = [
  ['unknown field', base + 'learning_rate: 1\n', /^learning_rate: unknown field/],
  ['misspelt field', base + 'sed: 1\n', /^sed: unknown field \(did you mean 'seed'\?\)/],
  [
    'wrong type',
    base.replace('devices: 4', 'devices: four'),
    /^devices: must be a number, got the string 'four'/,
  ],
  [
    'seq_len not divisible by 2·devices',
    base.replace('seq_len: 64', 'seq_len: 100'),
    /^seq_len: 100 is not divisible by 2 × devices = 8/,
  ],
  [
    'heads not divisible by kv_heads',
    base.replace('{ preset: tiny }', '{ preset: tiny, num_key_value_heads: 3 }'),
    /^model.num_key_value_heads: num_attention_heads 4 is not divisible by num_key_value_heads 3/,
  ],
  ['negative steps', base.replace('steps: 10', 'steps: -5'), /^steps: must be at least 1, got -5/],
  ['fractional steps', base.replace('steps: 10', 'steps: 2.5'), /^steps: must be a whole number/],
  ['unknown preset', base.replace('preset: tiny', 'preset: huge'), /^model.preset: unknown preset 'huge'/],
  [
    'bad policy',
    base + 'activation_checkpointing: sometimes\n',
    /^activation_checkpointing: must be one of .* or 'every-K'/,
  ],
  ['bad offload', base + 'offload: disk\n', /^offload: must be one of/],
  ['missing data', base.replace('data: { path: corpus.tokens }\n', ''), /^data: is required/],
  ['steps and tokens', base + 'tokens: 5\n', /^steps: give either 'steps' or 'tokens'/],
  ['YAML syntax', base + 'x: [1, 2\n', /^: YAML:/],
  ['empty', '', /^: the spec is empty/],
  [
    'missing config file',
    base.replace('{ preset: tiny }', '{ config: /nonexistent/config.json }'),
    /^model.config: cannot read \/nonexistent\/config.json/,
  ],
];

for (const [what, yaml, expected] of invalid) {
  test(`rejected: ${what}`, (t) => {
    const errors = errorsOf(yaml);
    t.true(errors.length > 0, 'spec was accepted');
    t.true(
      errors.some((e) => expected.test(e)),
      errors.join('\n'),
    );
  });
}

test('every error is reported, not just the first', (t) => {
  const errors = errorsOf(
    base.replace('devices: 4', 'devices: 0').replace('steps: 10', 'steps: -1') + 'priority: high\n',
  );
  t.is(errors.length, 3, errors.join('\n'));
});

test('resources.accelerators names the GPUs, SkyPilot style, and sets the device count', (t) => {
  const withGpus = (resources: string, extra = '') =>
    parseSpec(base.replace('devices: 4\n', '') + `resources: ${resources}\n` + extra);
  for (const form of [
    '{ accelerators: "H200:4" }',
    '{ accelerators: { H200: 4 } }',
    '{ accelerators: H100-80GB:4 }',
  ]) {
    const r = withGpus(form);
    if (!r.ok) return t.fail(`${form}: ${JSON.stringify(r.errors)}`);
    t.is(r.spec.devices, 4, form);
    t.is(r.spec.resources?.accelerators.count, 4, form);
  }
  const one = withGpus('{ accelerators: A100 }');
  t.true(one.ok && one.spec.devices === 1, 'a name alone means one GPU');
  const same = parseSpec(base + 'resources: { accelerators: "H200:4" }\n');
  t.true(same.ok, '`devices` may repeat the count');
});

test('resources.accelerators: each wrong form is a field error', (t) => {
  const errs = (yaml: string) => errorsOf(base + yaml);
  t.deepEqual(errs('resources: { accelerators: "H200:8" }\n'), [
    "devices: 4, but resources.accelerators asks for 8 × H200: give the same number or leave 'devices' out",
  ]);
  t.regex(
    errs('resources: { accelerators: "Z80:4" }\n').join('\n'),
    /^resources\.accelerators: 'Z80' is not a GPU the planner has datasheet numbers for \(A100, H100, H200\)/,
  );
  t.regex(
    errs('resources: { accelerators: "H200:four" }\n').join('\n'),
    /^resources\.accelerators: the count of H200 must be a whole number from 1 to 1024, got the string 'four'/,
  );
  t.regex(
    errs('resources: { accelerators: [H200, 4] }\n').join('\n'),
    /^resources\.accelerators: must be 'NAME:COUNT'/,
  );
  t.regex(errs('resources: { gpus: 4 }\n').join('\n'), /resources\.gpus: unknown field/);
  t.regex(
    errs('resources: { accelerators: "H200:4" }\ndevice_memory: 1000\n').join('\n'),
    /^device_memory: sets the budget of emulated CPU devices/,
  );
  t.regex(
    errorsOf(base.replace('devices: 4\n', '')).join('\n'),
    /^devices: is required/,
    'without resources, devices is required',
  );
});

// eval.niah: NIAH on the job's checkpoints. `base` has seq_len 64, 4 devices, 10 steps and the
// default checkpoint.every (200), so its only checkpoint step is the last one, 10.
const withEval = (niah: string, extra = '') => parseSpec(base + extra + `eval:\n  niah: ${niah}\n`);

test('eval.niah: defaults evaluate the last checkpoint at seq_len over five depths', (t) => {
  const r = withEval('{}');
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  t.deepEqual(r.spec.eval?.niah, {
    steps: [10],
    lengths: [64],
    depths: [0, 0.25, 0.5, 0.75, 1],
    tokenizer: 'byte',
    haystack: { kind: 'generated', seed: 0 },
    seed: 0,
  });
  const plain = parseSpec(base);
  t.true(plain.ok && plain.spec.eval === undefined, 'no eval section: no evaluation');
});

test('eval.niah: every and at_steps choose checkpoint steps; paths resolve', (t) => {
  const every = withEval(
    '{ every: 4, lengths: [32, 128], depths: [0.5], rope_theta: 40000 }',
    'checkpoint: { every: 2 }\n',
  );
  if (!every.ok) return t.fail(JSON.stringify(every.errors));
  t.deepEqual(every.spec.eval?.niah?.steps, [4, 8]);
  t.deepEqual(every.spec.eval?.niah?.lengths, [32, 128]);
  t.is(every.spec.eval?.niah?.rope_theta, 40000);
  const at = withEval(
    '{ at_steps: [10, 2, 2], haystack: hay.index.json, tokenizer: tok/tokenizer.json, seed: 3 }',
    'checkpoint: { every: 2 }\n',
  );
  if (!at.ok) return t.fail(JSON.stringify(at.errors));
  const niah = at.spec.eval!.niah!;
  t.deepEqual(niah.steps, [2, 10]);
  t.deepEqual(niah.haystack, { kind: 'file', path: join(process.cwd(), 'hay.index.json') });
  t.is(niah.tokenizer, join(process.cwd(), 'tok/tokenizer.json'));
  t.is(niah.seed, 3);
});

const invalidEval: [string, string, string, RegExp][] = [
  [
    'unknown field',
    '{ lenghts: [64] }',
    '',
    /^eval\.niah\.lenghts: unknown field \(did you mean 'lengths'\?\)/,
  ],
  [
    'not a checkpoint step',
    '{ at_steps: [3] }',
    'checkpoint: { every: 2 }\n',
    /^eval\.niah\.at_steps\[0\]: 3 is not a checkpoint step \(checkpoint\.every is 2, the last step 10\)/,
  ],
  [
    'past the last step',
    '{ at_steps: [12] }',
    '',
    /^eval\.niah\.at_steps\[0\]: 12 is past the job's last step 10/,
  ],
  [
    'every not a multiple of checkpoint.every',
    '{ every: 3 }',
    'checkpoint: { every: 2 }\n',
    /^eval\.niah\.every: 3 is not a multiple of checkpoint\.every 2/,
  ],
  [
    'both at_steps and every',
    '{ at_steps: [10], every: 10 }',
    '',
    /^eval\.niah: give either 'at_steps' or 'every'/,
  ],
  [
    'rope_theta not positive',
    '{ rope_theta: 0 }',
    '',
    /^eval\.niah\.rope_theta: must be greater than 0, got 0/,
  ],
  [
    'length not divisible by 2 × devices',
    '{ lengths: [60] }',
    '',
    /^eval\.niah\.lengths\[0\]: 60 is not divisible by 2 × devices = 8/,
  ],
  [
    'depth outside 0..1',
    '{ depths: [0.5, 1.5] }',
    '',
    /^eval\.niah\.depths\[1\]: must be between 0 and 1, got 1\.5/,
  ],
  ['empty lengths', '{ lengths: [] }', '', /^eval\.niah\.lengths: must be a non-empty list of numbers/],
  [
    'haystack seed with a haystack file',
    '{ haystack: h.bin, haystack_seed: 2 }',
    '',
    /^eval\.niah\.haystack_seed: seeds the generated haystack/,
  ],
  [
    'GPU job',
    '{}',
    'resources: { accelerators: "H200:4" }\n',
    /^eval\.niah: runs on the server's CPU ranks \(the CUDA cross-entropy does not count argmax hits\)/,
  ],
];

for (const [what, niah, extra, expected] of invalidEval) {
  test(`eval.niah rejected: ${what}`, (t) => {
    const r = withEval(niah, extra);
    const errors = r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.reason}`);
    t.true(
      errors.some((e) => expected.test(e)),
      errors.join('\n') || 'spec was accepted',
    );
  });
}
