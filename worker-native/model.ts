// Types of the Qwen2 model binding (worker-native/src/addon/model_binding.cc) and the helpers
// the trainer and tests use to create a model and find its tensors in the flat buffers.
import { native } from './native.js';
import type { ArenaStats, CrossEntropyResult, FloatArray } from './kernels.js';
import type { Qwen2Config } from '../core/model-config.js';

export type { Qwen2Config };

export interface ModelOptions {
  /** Device label used in out-of-memory errors, e.g. 'cpu:3' (default 'cpu:0'). */
  device?: string;
  /** Tokens per cross-entropy chunk (default 256): the logits workspace is this × vocab floats. */
  ceChunkTokens?: number;
  /** Standard deviation of the normal init of matrices and embeddings (default 0.02). */
  initializerRange?: number;
}

/** Where a Hugging Face tensor lives in the flat parameter (and gradient) buffer. */
export interface ParamView {
  name: string;
  shape: number[];
  /** In floats. */
  offset: number;
  numel: number;
  /** Hugging Face decays matrices and embeddings, not biases or norm weights. */
  weightDecay: boolean;
}

export interface StepLoss {
  /** Mean cross-entropy over counted tokens (0 when none). */
  loss: number;
  lossSum: number;
  /** Tokens whose label is not -100. */
  tokens: number;
}

export interface ForwardBackwardOptions {
  /** Gradients are of gradScale · lossSum; default 1 / tokens (the mean loss). */
  gradScale?: number;
}

/**
 * A Qwen2 causal LM on one emulated device. Inputs are one rank's tokens: ids, their global
 * positions (RoPE) and per-token labels already shifted (labels[t] follows ids[t]; -100 ignored),
 * all Int32Array of one length. While an async method runs, every other call throws.
 */
export interface Qwen2Model {
  /** HF init: matrices/embeddings ~ N(0, initializerRange), biases 0, norms 1; deterministic per seed. */
  initParameters(seed: number): Promise<void>;
  /** Forward and backward; ADDS the gradients into the gradient buffer (accumulation). */
  forwardBackward(
    ids: Int32Array,
    positions: Int32Array,
    labels: Int32Array,
    options?: ForwardBackwardOptions,
  ): Promise<StepLoss>;
  /** Forward only (one layer's activations alive at a time). */
  loss(ids: Int32Array, positions: Int32Array, labels: Int32Array): Promise<StepLoss>;
  /** Copies of the flat buffers (layout: parameterViews()). */
  getParameters(): Float32Array;
  setParameters(flat: Float32Array): void;
  getGradients(): Float32Array;
  zeroGradients(): void;
  parameterViews(): ParamView[];
  numParameters(): number;
  /** The model's device arena: parameters, gradients, and activations while a step runs. */
  memory(): ArenaStats;
  resetPeak(): void;
}

export interface ModelApi {
  Qwen2Model: new (config: Qwen2Config, budgetBytes: number, options?: ModelOptions) => Qwen2Model;
  /**
   * The naive reference model in the precision of params (Float64Array for the ground truth).
   * Writes the gradients of gradScale · lossSum into grads when given. With roundBf16, every
   * stage's result is rounded to bf16: the naive bf16 implementation the GPU is held against.
   */
  referenceQwen2ForwardBackward<T extends FloatArray>(
    config: Qwen2Config,
    params: T,
    ids: Int32Array,
    positions: Int32Array,
    labels: Int32Array,
    gradScale: number,
    grads: T | null,
    roundBf16?: boolean,
  ): Promise<CrossEntropyResult>;
}

declare module './native.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface NativeAddon extends ModelApi {}
}

/** Creates a model in a device arena of budgetBytes and initialises it from seed. */
export async function createQwen2Model(
  config: Qwen2Config,
  seed: number,
  budgetBytes: number,
  options?: ModelOptions,
): Promise<Qwen2Model> {
  const model = new (native().Qwen2Model)(config, budgetBytes, options);
  await model.initParameters(seed);
  return model;
}

/** The view of one tensor of a flat buffer (parameters or gradients), by Hugging Face name. */
export function viewOf<T extends FloatArray>(flat: T, views: ParamView[], name: string): T {
  const view = views.find((v) => v.name === name);
  if (!view) throw new Error(`no parameter named '${name}'`);
  return flat.subarray(view.offset, view.offset + view.numel) as T;
}
