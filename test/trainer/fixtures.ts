// What the trainer tests share: a tiny Qwen2, deterministic sequences (generated identically in
// every rank process from a seed, so nothing large crosses processes), a rank's zigzag shard of a
// sequence, and parameters far enough from the HF init that every part of the model shapes the
// gradients.
import type { Qwen2Config } from '../../worker-native/model.js';
import type { Trainer, TrainerOptions } from '../../worker-native/trainer.js';
import { zigzagPositions } from '../../core/zigzag.js';
import { random, randomInts } from '../kernels/numeric.js';

export const IGNORE = -100;
export const MiB = 1 << 20;

/** hidden 32, 4 heads over 2 KV heads (GQA, head_dim 8), intermediate 64, vocab 64. */
export function tinyConfig(layers = 2, tied = false): Qwen2Config {
  return {
    hidden_size: 32,
    intermediate_size: 64,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: layers,
    vocab_size: 64,
    rope_theta: 1e6,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: tied,
  };
}

export function trainerOptions(config: Qwen2Config, overrides: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    config,
    seed: 5,
    deviceBudgetBytes: 64 * MiB,
    hostBudgetBytes: 64 * MiB,
    activationCheckpointing: 'none',
    offload: 'none',
    optimizer: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0 },
    ceChunkTokens: 16,
    initializerRange: 0.3,
    ...overrides,
  };
}

/** A whole sequence: ids and their labels already shifted (labels[t] follows ids[t]). */
export interface Sequence {
  ids: Int32Array;
  labels: Int32Array;
}

/**
 * Micro-batch `index` of a run: seqLen random ids; each label is the next id, the last one and
 * every 7th are ignored (so label counts differ between ranks, as in real packed data).
 */
export function sequence(seed: number, index: number, seqLen: number, vocab: number): Sequence {
  const rand = random(seed * 1000 + index);
  const ids = randomInts(seqLen + 1, rand, vocab);
  const labels = Int32Array.from({ length: seqLen }, (_, t) => (t % 7 === 3 ? IGNORE : ids[t + 1]!));
  return { ids: ids.subarray(0, seqLen), labels };
}

/** A sequence that repeats a short pattern: a model can learn it quickly (the sanity run). */
export function repeatedSequence(pattern: number[], seqLen: number): Sequence {
  const ids = Int32Array.from({ length: seqLen + 1 }, (_, t) => pattern[t % pattern.length]!);
  return { ids: ids.subarray(0, seqLen), labels: ids.slice(1, seqLen + 1) };
}

export interface RankTokens {
  ids: Int32Array;
  positions: Int32Array;
  labels: Int32Array;
}

/** Rank `rank`'s zigzag shard of a sequence, with global positions. */
export function rankTokens(seq: Sequence, world: number, rank: number): RankTokens {
  const positions = zigzagPositions(seq.ids.length, world, rank);
  return {
    ids: Int32Array.from(positions, (p) => seq.ids[p]!),
    positions,
    labels: Int32Array.from(positions, (p) => seq.labels[p]!),
  };
}

/**
 * Moves norm weights and biases off their init (1 and 0) by up to ±0.2, identically in every
 * process, so every parameter has a real gradient.
 */
export function perturbParameters(trainer: Trainer): Float32Array {
  const { params } = trainer.snapshot();
  const rand = random(11);
  for (const view of trainer.parameterViews()) {
    if (view.shape.length !== 1) continue;
    for (let i = 0; i < view.numel; i++) params[view.offset + i]! += 0.2 * rand();
  }
  trainer.load({ params });
  return params;
}

/** True when two float arrays hold the same bits (so -0 and +0 differ, and NaN equals NaN). */
export function bitwiseEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
