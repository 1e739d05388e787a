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
