// YAML → JobSpec. Every problem is reported (not just the first) with its field path and reason,
// and nothing is queued unless the list is empty. This file checks the spec on its own; checks
// that need the outside world (the data file, the nodes' devices, the planner's memory verdict)
// come on top of it at submission.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';

import type { FieldError, JobSpec, NiahEvalSpec, SpecResult } from '../../core/job-spec.js';
import { acceleratorModel, type AcceleratorRequest } from '../../core/devices.js';
import { MODEL_PRESETS, type ModelConfig } from '../../core/model-config.js';
import { knownAcceleratorModels } from '../plan/devices.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const MODEL_CONFIG_FIELDS: Record<keyof ModelConfig, 'int' | 'number' | 'boolean'> = {
  hidden_size: 'int',
  intermediate_size: 'int',
  num_attention_heads: 'int',
  num_key_value_heads: 'int',
  num_hidden_layers: 'int',
  vocab_size: 'int',
  rope_theta: 'number',
  rms_norm_eps: 'number',
  tie_word_embeddings: 'boolean',
};

const TOP_FIELDS = [
  'name',
  'model',
  'data',
  'seq_len',
  'devices',
  'resources',
  'precision',
  'optimizer',
  'schedule',
  'steps',
  'tokens',
  'grad_accumulation',
  'checkpoint',
  'activation_checkpointing',
  'offload',
  'max_restarts',
  'priority',
  'seed',
  'device_memory',
  'eval',
];

const NIAH_EVAL_FIELDS = [
  'at_steps',
  'every',
  'lengths',
  'depths',
  'tokenizer',
  'haystack',
  'haystack_seed',
  'seed',
  'rope_theta',
];
const DEFAULT_NIAH_DEPTHS = [0, 0.25, 0.5, 0.75, 1];

/** Reads typed fields out of a YAML object, collecting errors with their paths. */
class Reader {
  constructor(readonly errors: FieldError[]) {}

  error(path: string, reason: string): void {
    this.errors.push({ path, reason });
  }

  object(value: Json | undefined, path: string, allowed: string[]): Record<string, Json> | undefined {
    if (value === undefined) return undefined;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.error(path, `must be a mapping, got ${describe(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        const hint = closest(key, allowed);
        this.error(join(path, key), `unknown field${hint ? ` (did you mean '${hint}'?)` : ''}`);
      }
    }
    return value;
  }

  number(
    obj: Record<string, Json> | undefined,
    key: string,
    path: string,
    opts: {
      int?: boolean;
      min?: number;
      max?: number;
      exclusiveMin?: number;
      fallback?: number;
      required?: boolean;
    },
  ): number | undefined {
    const value = obj?.[key];
    const p = join(path, key);
    if (value === undefined || value === null) {
      if (opts.required) this.error(p, 'is required');
      return opts.fallback;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      this.error(p, `must be a number, got ${describe(value)}`);
      return opts.fallback;
    }
    if (opts.int && !Number.isInteger(value)) this.error(p, `must be a whole number, got ${value}`);
    else if (opts.min !== undefined && value < opts.min)
      this.error(p, `must be at least ${opts.min}, got ${value}`);
    else if (opts.exclusiveMin !== undefined && value <= opts.exclusiveMin)
      this.error(p, `must be greater than ${opts.exclusiveMin}, got ${value}`);
    else if (opts.max !== undefined && value > opts.max)
      this.error(p, `must be at most ${opts.max}, got ${value}`);
    else return value;
    return opts.fallback;
  }

  string(
    obj: Record<string, Json> | undefined,
    key: string,
    path: string,
    opts: { required?: boolean; oneOf?: string[]; pattern?: RegExp; patternHint?: string } = {},
  ): string | undefined {
    const value = obj?.[key];
    const p = join(path, key);
    if (value === undefined || value === null) {
      if (opts.required) this.error(p, 'is required');
      return undefined;
    }
    if (typeof value !== 'string') {
      this.error(p, `must be a string, got ${describe(value)}`);
      return undefined;
    }
    if (opts.oneOf && !opts.oneOf.includes(value) && !(opts.pattern && opts.pattern.test(value))) {
      this.error(
        p,
        `must be one of ${opts.oneOf.map((o) => `'${o}'`).join(', ')}${opts.patternHint ? ` or ${opts.patternHint}` : ''}, got '${value}'`,
      );
      return undefined;
    }
    return value;
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function describe(value: Json | undefined): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string '${value}'`;
  return `${typeof value} ${String(value)}`;
}

/** The allowed name nearest to a misspelt one (edit distance ≤ 2), for "did you mean". */
function closest(word: string, options: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const option of options) {
    const d = editDistance(word, option);
    if (d < bestDistance) {
      best = option;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function resolvePath(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

function readModel(r: Reader, raw: Json | undefined, baseDir: string): JobSpec['model'] | undefined {
  const obj = r.object(raw, 'model', [
    'preset',
    'config',
    ...Object.keys(MODEL_CONFIG_FIELDS),
    'init_weights',
  ]);
  if (!obj) {
    if (raw === undefined) r.error('model', 'is required (a preset name or a config.json path)');
    return undefined;
  }
  const preset = r.string(obj, 'preset', 'model');
  const configPath = r.string(obj, 'config', 'model');
  let base: Partial<ModelConfig> | undefined;
  if (preset !== undefined && configPath !== undefined)
    r.error('model', "give either 'preset' or 'config', not both");
  else if (preset !== undefined) {
    base = MODEL_PRESETS[preset];
    if (!base)
      r.error('model.preset', `unknown preset '${preset}' (known: ${Object.keys(MODEL_PRESETS).join(', ')})`);
  } else if (configPath !== undefined) {
    const file = resolvePath(baseDir, configPath);
    try {
      base = JSON.parse(readFileSync(file, 'utf8')) as Partial<ModelConfig>;
    } catch (err) {
      r.error('model.config', `cannot read ${file}: ${(err as Error).message}`);
    }
  } else {
    r.error('model', "needs 'preset' or 'config'");
  }
  if (!base) return undefined;
  const config: Record<string, number | boolean> = {};
  for (const [field, kind] of Object.entries(MODEL_CONFIG_FIELDS)) {
    const override = obj[field];
    const value = override !== undefined ? override : (base as Record<string, Json | undefined>)[field];
    const path =
      override !== undefined ? `model.${field}` : `model.${configPath ? 'config' : 'preset'}.${field}`;
    if (kind === 'boolean') {
      if (typeof value !== 'boolean') r.error(path, `must be true or false, got ${describe(value ?? null)}`);
      else config[field] = value;
    } else {
      const n = r.number({ [field]: value ?? null }, field, path.slice(0, path.lastIndexOf('.')), {
        int: kind === 'int',
        exclusiveMin: 0,
        required: true,
      });
      if (n !== undefined) config[field] = n;
    }
  }
  const c = config as unknown as ModelConfig;
  if (c.num_attention_heads && c.num_key_value_heads && c.num_attention_heads % c.num_key_value_heads !== 0) {
    r.error(
      'model.num_key_value_heads',
      `num_attention_heads ${c.num_attention_heads} is not divisible by num_key_value_heads ${c.num_key_value_heads}`,
    );
  }
  if (c.hidden_size && c.num_attention_heads && c.hidden_size % c.num_attention_heads !== 0) {
    r.error(
      'model.hidden_size',
      `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`,
    );
  } else if (c.hidden_size && c.num_attention_heads && (c.hidden_size / c.num_attention_heads) % 2 !== 0) {
    r.error(
      'model.hidden_size',
      `head dimension ${c.hidden_size / c.num_attention_heads} must be even for rotary embeddings`,
    );
  }
  const initWeights = r.string(obj, 'init_weights', 'model');
  return {
    ...(preset !== undefined ? { preset } : {}),
    ...(configPath !== undefined ? { configPath: resolvePath(baseDir, configPath) } : {}),
    config: c,
    ...(initWeights !== undefined ? { initWeights: resolvePath(baseDir, initWeights) } : {}),
  };
}

/** A list of numbers, each checked by `check` (which returns the reason it is wrong, or nothing). */
function numberList(
  r: Reader,
  value: Json | undefined,
  path: string,
  check: (n: number) => string | undefined,
): number[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    r.error(path, `must be a non-empty list of numbers, got ${describe(value)}`);
    return undefined;
  }
  let ok = true;
  value.forEach((v, i) => {
    const why =
      typeof v !== 'number' || !Number.isFinite(v) ? `must be a number, got ${describe(v)}` : check(v);
    if (why) {
      r.error(`${path}[${i}]`, why);
      ok = false;
    }
  });
  return ok ? (value as number[]) : undefined;
}

/**
 * `eval: {niah: {...}}`: NIAH on chosen checkpoints of the job, which the server runs as a
 * follow-up step once each is saved (orchestrator/eval/niah-follow-up.ts). The steps must be checkpoint
 * steps: the results belong to a checkpoint.
 */
function readEval(
  r: Reader,
  raw: Json | undefined,
  baseDir: string,
  job: {
    seqLen?: number;
    devices?: number;
    steps?: number;
    checkpointEvery?: number;
    accelerators: boolean;
  },
): JobSpec['eval'] | undefined {
  const evalObj = r.object(raw, 'eval', ['niah']);
  if (!evalObj) return undefined;
  const obj = r.object(evalObj.niah, 'eval.niah', NIAH_EVAL_FIELDS);
  if (!obj) return evalObj.niah === undefined ? {} : undefined;
  const path = 'eval.niah';
  if (job.accelerators)
    r.error(
      path,
      "runs on the server's CPU ranks (the CUDA cross-entropy does not count argmax hits); this job names resources.accelerators: evaluate its checkpoints with 'longctx eval niah' where they fit",
    );
  const { seqLen, devices, steps: lastStep, checkpointEvery } = job;
  const isCheckpointStep = (s: number) =>
    checkpointEvery === undefined || lastStep === undefined || s % checkpointEvery === 0 || s === lastStep;
  let steps: number[] | undefined;
  const atSteps = numberList(r, obj.at_steps, `${path}.at_steps`, (s) => {
    if (!Number.isInteger(s) || s < 1) return `must be a whole number of at least 1, got ${s}`;
    if (lastStep !== undefined && s > lastStep) return `${s} is past the job's last step ${lastStep}`;
    if (!isCheckpointStep(s))
      return `${s} is not a checkpoint step (checkpoint.every is ${checkpointEvery}, the last step ${lastStep})`;
    return undefined;
  });
  const every = r.number(obj, 'every', path, { int: true, min: 1 });
  if (obj.at_steps !== undefined && obj.every !== undefined)
    r.error(path, "give either 'at_steps' or 'every', not both");
  else if (atSteps) steps = [...new Set(atSteps)].sort((a, b) => a - b);
  else if (every !== undefined && checkpointEvery !== undefined && lastStep !== undefined) {
    if (every % checkpointEvery !== 0)
      r.error(`${path}.every`, `${every} is not a multiple of checkpoint.every ${checkpointEvery}`);
    else steps = Array.from({ length: Math.floor(lastStep / every) }, (_, i) => (i + 1) * every);
    if (steps?.length === 0) r.error(`${path}.every`, `${every} is past the job's last step ${lastStep}`);
  } else if (obj.every === undefined && lastStep !== undefined) steps = [lastStep];

  const lengths =
    numberList(r, obj.lengths, `${path}.lengths`, (n) => {
      if (!Number.isInteger(n) || n < 2) return `must be a whole number of at least 2, got ${n}`;
      if (devices !== undefined && n % (2 * devices) !== 0)
        return `${n} is not divisible by 2 × devices = ${2 * devices} (the zigzag ring cuts it into equal chunks)`;
      return undefined;
    }) ?? (seqLen !== undefined ? [seqLen] : undefined);
  const depths =
    numberList(r, obj.depths, `${path}.depths`, (d) =>
      d >= 0 && d <= 1 ? undefined : `must be between 0 and 1, got ${d}`,
    ) ?? DEFAULT_NIAH_DEPTHS;
  const tokenizer = r.string(obj, 'tokenizer', path) ?? 'byte';
  const haystackPath = r.string(obj, 'haystack', path);
  const haystackSeed = r.number(obj, 'haystack_seed', path, { int: true, min: 0, fallback: 0 });
  if (haystackPath !== undefined && obj.haystack_seed !== undefined)
    r.error(`${path}.haystack_seed`, 'seeds the generated haystack; this one comes from a token file');
  const seed = r.number(obj, 'seed', path, { int: true, min: 0, fallback: 0 });
  const ropeTheta = r.number(obj, 'rope_theta', path, { exclusiveMin: 0 });
  if (!steps || !lengths || !depths) return undefined;
  const niah: NiahEvalSpec = {
    steps,
    lengths,
    depths,
    tokenizer: tokenizer === 'byte' ? 'byte' : resolvePath(baseDir, tokenizer),
    haystack:
      haystackPath !== undefined
        ? { kind: 'file', path: resolvePath(baseDir, haystackPath) }
        : { kind: 'generated', seed: haystackSeed! },
    seed: seed!,
    ...(ropeTheta !== undefined ? { rope_theta: ropeTheta } : {}),
  };
  return { niah };
}

const ACCELERATORS_FORM = "must be 'NAME:COUNT' (e.g. H200:8) or a mapping with one entry (e.g. {H200: 8})";

/**
 * `resources: {accelerators: H200:8}`, SkyPilot's spelling (`H200` alone means one), or
 * `{accelerators: {H200: 8}}`. The model must be one the planner has a datasheet for.
 */
function readAccelerators(r: Reader, raw: Json | undefined): AcceleratorRequest | undefined {
  const resources = r.object(raw, 'resources', ['accelerators']);
  if (!resources) return undefined;
  const value = resources.accelerators;
  const path = 'resources.accelerators';
  let name: string | undefined;
  let count: Json | undefined = 1;
  if (value === undefined || value === null) {
    r.error(path, `is required in 'resources' (${ACCELERATORS_FORM.replace('must be ', '')})`);
    return undefined;
  }
  if (typeof value === 'string') {
    const m = /^\s*([^:\s]+)\s*(?::\s*(\S+)\s*)?$/.exec(value);
    if (!m) {
      r.error(path, `${ACCELERATORS_FORM}, got '${value}'`);
      return undefined;
    }
    name = m[1]!;
    if (m[2] !== undefined) count = /^\d+$/.test(m[2]) ? Number(m[2]) : m[2];
  } else if (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1) {
    [[name, count]] = Object.entries(value) as [[string, Json]];
  } else {
    r.error(path, `${ACCELERATORS_FORM}, got ${describe(value)}`);
    return undefined;
  }
  const known = knownAcceleratorModels();
  const model = acceleratorModel(name);
  if (model === undefined || !known.includes(model)) {
    r.error(
      path,
      `'${name}' is not a GPU the planner has datasheet numbers for (${known.join(', ')}); without GPUs, give 'devices: N' for N emulated CPU devices`,
    );
    return undefined;
  }
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 1024) {
    r.error(path, `the count of ${name} must be a whole number from 1 to 1024, got ${describe(count)}`);
    return undefined;
  }
  return { name, count };
}

/** Validates a parsed spec object. `baseDir` resolves relative paths (the YAML file's folder). */
export function validateSpecObject(raw: Json, baseDir: string): SpecResult {
  const errors: FieldError[] = [];
  const r = new Reader(errors);
  const top = r.object(raw, '', TOP_FIELDS);
  if (!top) {
    if (raw === null || raw === undefined) errors.push({ path: '', reason: 'the spec is empty' });
    return { ok: false, errors };
  }
  const name = r.string(top, 'name', '', { required: true });
  if (name !== undefined && !/^[a-z0-9][a-z0-9._-]{0,62}$/i.test(name)) {
    r.error(
      'name',
      `must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit, got '${name}'`,
    );
  }
  const model = readModel(r, top.model, baseDir);

  const dataObj = r.object(top.data, 'data', ['path']);
  if (top.data === undefined)
    r.error('data', 'is required (data.path: a token file from `longctx data pack`)');
  const dataPath = r.string(dataObj, 'path', 'data', { required: dataObj !== undefined });

  const seqLen = r.number(top, 'seq_len', '', { int: true, min: 2, required: true });
  const accelerators = readAccelerators(r, top.resources);
  let devices = r.number(top, 'devices', '', {
    int: true,
    min: 1,
    max: 1024,
    required: top.resources === undefined,
  });
  if (accelerators && devices !== undefined && devices !== accelerators.count)
    r.error(
      'devices',
      `${devices}, but resources.accelerators asks for ${accelerators.count} × ${accelerators.name}: give the same number or leave 'devices' out`,
    );
  devices = accelerators?.count ?? devices;
  if (seqLen !== undefined && devices !== undefined && seqLen % (2 * devices) !== 0) {
    r.error(
      'seq_len',
      `${seqLen} is not divisible by 2 × devices = ${2 * devices} (zigzag sharding cuts the sequence into ${2 * devices} equal chunks)`,
    );
  }
  const precision = r.string(top, 'precision', '', { oneOf: ['fp32', 'bf16'] }) as
    JobSpec['precision'] | undefined;

  const optObj = r.object(top.optimizer, 'optimizer', [
    'name',
    'lr',
    'betas',
    'eps',
    'weight_decay',
    'grad_clip',
  ]);
  r.string(optObj, 'name', 'optimizer', { oneOf: ['adamw'] });
  const lr = r.number(optObj, 'lr', 'optimizer', { exclusiveMin: 0, max: 1, fallback: 1e-5 });
  let betas: [number, number] = [0.9, 0.95];
  if (optObj?.betas !== undefined) {
    const b = optObj.betas;
    if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => typeof x === 'number' && x >= 0 && x < 1)) {
      r.error('optimizer.betas', 'must be a list of two numbers in [0, 1)');
    } else betas = [b[0] as number, b[1] as number];
  }
  const eps = r.number(optObj, 'eps', 'optimizer', { exclusiveMin: 0, fallback: 1e-8 });
  const weightDecay = r.number(optObj, 'weight_decay', 'optimizer', { min: 0, fallback: 0 });
  const gradClip = r.number(optObj, 'grad_clip', 'optimizer', { min: 0, fallback: 1 });

  const schedObj = r.object(top.schedule, 'schedule', ['kind', 'warmup_steps', 'min_lr']);
  const kind = (r.string(schedObj, 'kind', 'schedule', { oneOf: ['constant', 'cosine'] }) ?? 'constant') as
    'constant' | 'cosine';
  const warmup = r.number(schedObj, 'warmup_steps', 'schedule', { int: true, min: 0, fallback: 0 });
  const minLr = r.number(schedObj, 'min_lr', 'schedule', { min: 0, fallback: 0 });

  const gradAccumulation = r.number(top, 'grad_accumulation', '', { int: true, min: 1, fallback: 1 });
  let steps = r.number(top, 'steps', '', { int: true, min: 1 });
  const tokens = r.number(top, 'tokens', '', { int: true, min: 1 });
  if (steps !== undefined && tokens !== undefined)
    r.error('steps', "give either 'steps' or 'tokens' (a token budget), not both");
  else if (steps === undefined && tokens !== undefined && seqLen && gradAccumulation) {
    steps = Math.ceil(tokens / (seqLen * gradAccumulation));
  } else if (steps === undefined && tokens === undefined && top.steps === undefined) {
    r.error('steps', "is required (or give 'tokens', a token budget)");
  }

  const ckptObj = r.object(top.checkpoint, 'checkpoint', ['every', 'keep', 'keep_every']);
  const every = r.number(ckptObj, 'every', 'checkpoint', { int: true, min: 1, fallback: 200 });
  const keep = r.number(ckptObj, 'keep', 'checkpoint', { int: true, min: 1, fallback: 3 });
  const keepEvery = r.number(ckptObj, 'keep_every', 'checkpoint', { int: true, min: 0, fallback: 0 });

  const acPattern = /^every-[1-9]\d*$/;
  const ac = (r.string(top, 'activation_checkpointing', '', {
    oneOf: ['auto', 'none', 'full', 'selective'],
    pattern: acPattern,
    patternHint: "'every-K' (K ≥ 1)",
  }) ?? 'auto') as JobSpec['activation_checkpointing'];
  const offload = (r.string(top, 'offload', '', {
    oneOf: ['auto', 'none', 'optimizer', 'params+optimizer'],
  }) ?? 'auto') as JobSpec['offload'];
  const maxRestarts = r.number(top, 'max_restarts', '', { int: true, min: 0, max: 100, fallback: 3 });
  const priority = r.number(top, 'priority', '', { int: true, min: 0, max: 100, fallback: 0 });
  const seed = r.number(top, 'seed', '', { int: true, min: 0, fallback: 1234 });
  const deviceMemory = r.number(top, 'device_memory', '', { int: true, exclusiveMin: 0 });
  if (accelerators && deviceMemory !== undefined)
    r.error(
      'device_memory',
      "sets the budget of emulated CPU devices; a job that names resources.accelerators has the GPUs' memory",
    );
  const evaluations = readEval(r, top.eval, baseDir, {
    ...(seqLen !== undefined ? { seqLen } : {}),
    ...(devices !== undefined ? { devices } : {}),
    ...(steps !== undefined ? { steps } : {}),
    ...(every !== undefined ? { checkpointEvery: every } : {}),
    accelerators: accelerators !== undefined,
  });

  if (errors.length > 0 || !model || !name || !dataPath || !seqLen || !devices || !steps) {
    return { ok: false, errors };
  }
  const spec: JobSpec = {
    name,
    model,
    data: { path: resolvePath(baseDir, dataPath) },
    seq_len: seqLen,
    devices,
    ...(accelerators ? { resources: { accelerators } } : {}),
    precision: precision ?? 'fp32',
    optimizer: { lr: lr!, betas, eps: eps!, weight_decay: weightDecay!, grad_clip: gradClip! },
    schedule: { kind, warmup_steps: warmup!, min_lr: minLr! },
    steps,
    ...(tokens !== undefined ? { tokens } : {}),
    grad_accumulation: gradAccumulation!,
    checkpoint: { every: every!, keep: keep!, keep_every: keepEvery! },
    activation_checkpointing: ac,
    offload,
    max_restarts: maxRestarts!,
    priority: priority!,
    seed: seed!,
    ...(deviceMemory !== undefined ? { device_memory: deviceMemory } : {}),
    ...(evaluations?.niah ? { eval: evaluations } : {}),
  };
  return { ok: true, spec };
}

/** Parses YAML text (syntax errors become field errors with line numbers) and validates it. */
export function parseSpec(yamlText: string, sourcePath = '<spec>'): SpecResult {
  const doc = parseDocument(yamlText, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => ({ path: '', reason: `YAML: ${e.message.split('\n')[0]}` })),
    };
  }
  const baseDir = sourcePath === '<spec>' ? process.cwd() : dirname(resolve(sourcePath));
  return validateSpecObject(doc.toJS({ maxAliasCount: 100 }) as Json, baseDir);
}

export function loadSpecFile(path: string): SpecResult {
  if (!existsSync(path))
    return { ok: false, errors: [{ path: '', reason: `spec file ${path} does not exist` }] };
  return parseSpec(readFileSync(path, 'utf8'), path);
}
