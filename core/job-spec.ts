// A job spec: what an ops engineer writes in YAML. This file holds the types of the validated,
// defaulted spec; validate.ts turns YAML into one or into a list of field errors.
import type { AcceleratorRequest } from './devices.js';
import type { ModelConfig } from './model-config.js';
import type { ActivationCheckpointing, Offload, Precision } from './policies.js';

export interface JobSpec {
  name: string;
  model: {
    /** A preset name, or undefined when `config` came from a config.json. */
    preset?: string;
    configPath?: string;
    /** The resolved HF Qwen2 config (preset or file, then overrides). */
    config: ModelConfig;
    initWeights?: string;
  };
  data: {
    /** The packed token file (`longctx data pack`), absolute. */
    path: string;
  };
  seq_len: number;
  /** Devices of one node the job runs on: resources.accelerators' count when given. */
  devices: number;
  /**
   * The GPUs the job needs. Absent: `devices` devices of whatever kind the node has (emulated CPU
   * devices on a node without GPUs).
   */
  resources?: { accelerators: AcceleratorRequest };
  precision: Precision;
  optimizer: {
    lr: number;
    betas: [number, number];
    eps: number;
    weight_decay: number;
    grad_clip: number;
  };
  schedule: {
    kind: 'constant' | 'cosine';
    warmup_steps: number;
    min_lr: number;
  };
  /** Optimizer steps; derived from `tokens` when the spec gives a token budget instead. */
  steps: number;
  tokens?: number;
  grad_accumulation: number;
  checkpoint: { every: number; keep: number; keep_every: number };
  activation_checkpointing: 'auto' | ActivationCheckpointing;
  offload: 'auto' | Offload;
  max_restarts: number;
  priority: number;
  seed: number;
  /** Per-device byte budget override for emulated CPU devices (else the node's). */
  device_memory?: number;
  /** Evaluations of chosen checkpoints, run by the server once each is saved. */
  eval?: { niah?: NiahEvalSpec };
}

/**
 * Needle-in-a-haystack on the job's checkpoints (eval/niah-cases.ts builds the grid): once a chosen
 * checkpoint is saved, the server evaluates it on `devices` CPU ranks of its machine (zigzag ring,
 * as training shards), writes the results into the checkpoint folder and records them for the
 * dashboard and /metrics.
 */
export interface NiahEvalSpec {
  /** The checkpoint steps evaluated, ascending: from `at_steps`, `every`, or the last step alone. */
  steps: number[];
  /** Context lengths, each a multiple of 2 × devices (default: seq_len). */
  lengths: number[];
  /** Needle depths in [0, 1]. */
  depths: number[];
  /** 'byte' or a Hugging Face tokenizer.json (absolute): the tokenizer the data was packed with. */
  tokenizer: string;
  /** A packed token file (absolute) to take the haystack from, or generated filler. */
  haystack: { kind: 'generated'; seed: number } | { kind: 'file'; path: string };
  /** Seeds the keys. */
  seed: number;
  /** Evaluate with this RoPE base instead of the model's (e.g. raised for lengths past seq_len). */
  rope_theta?: number;
}

export interface FieldError {
  path: string;
  reason: string;
}

export type SpecResult = { ok: true; spec: JobSpec } | { ok: false; errors: FieldError[] };

export function formatFieldErrors(errors: FieldError[], file?: string): string {
  const where = file ? `${file}: ` : '';
  return errors.map((e) => `${where}${e.path || '(root)'}: ${e.reason}`).join('\n');
}
