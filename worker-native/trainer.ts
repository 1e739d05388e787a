// The native trainer (src/train/trainer.h, binding src/addon/trainer_binding.cc): what one rank runs
// each training step. The worker host drives it:
//
//   const trainer = await createTrainer(communicator, options);
//   for each step: for each of A micro-batches: await trainer.accumulate(ids, positions, labels, A);
//                  await trainer.step(lr);
//
// With world > 1 the model's attention is zigzag ring attention over the communicator and every
// call that runs the model or the optimizer is a collective: every rank makes the same calls in the
// same order, with the same options. One call at a time per trainer: a call while another runs is
// refused with an error that says "busy" (the one exception: the copy of startSnapshot() may overlap
// accumulate, evaluate and reduceGradients). While a trainer call runs, use its communicator for
// nothing else: the trainer's collectives must keep the same order on every rank, and the ring's
// transfers use tags 1 and 2.
import type { Communicator } from './comm.js';
import type { Qwen2Config } from './model.js';
import { native } from './native.js';
import type { ActivationCheckpointing, Offload } from '../core/policies.js';

export type { ActivationCheckpointing, Offload };

/** torch.optim.AdamW hyperparameters except lr, which step() takes. */
export interface TrainerOptimizerOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay, applied to matrices and embeddings only (ParameterView.weightDecay). */
  weightDecay: number;
  /** Largest global gradient L2 norm (clip_grad_norm_); 0 disables clipping. */
  gradClip: number;
}

export interface TrainerOptions {
  config: Qwen2Config;
  /** Parameters start from Hugging Face's init with this seed (the same on every rank). */
  seed: number;
  /** Budget of the emulated device's arena; an allocation past it fails with the arena's error. */
  deviceBudgetBytes: number;
  /** Budget of the host arena (offloaded state, staging copies). */
  hostBudgetBytes: number;
  activationCheckpointing: ActivationCheckpointing;
  offload: Offload;
  optimizer: TrainerOptimizerOptions;
  /** Tokens per cross-entropy chunk (default 256): the logits workspace is this × vocab floats. */
  ceChunkTokens?: number;
  /** Standard deviation of the init of matrices and embeddings (default 0.02, Hugging Face's). */
  initializerRange?: number;
  /**
   * 'cuda:<index>' trains on that CUDA device (bf16 compute, float32 master weights; several ranks
   * may share one GPU, their ring staged through host memory); any other name is an emulated CPU
   * device, named in out-of-memory errors (default 'cpu:<rank>').
   */
  device?: string;
  /**
   * How CUDA ranks exchange device memory: 'auto' (default; NCCL when the host has it, else gloo
   * host staging), 'nccl' (fail when it is missing) or 'staged'. Every rank must pass the same.
   * Several ranks sharing one GPU need 'staged': NCCL refuses two ranks on one device.
   */
  collectives?: 'auto' | 'nccl' | 'staged';
}

/** Arena counters in bytes; peaks since creation or the last resetPeak(). */
export interface TrainerMemory {
  deviceCurrent: number;
  devicePeak: number;
  deviceBudget: number;
  hostCurrent: number;
  hostPeak: number;
  hostBudget: number;
}

/** The loss of one micro-batch (what accumulate and evaluate both report). */
export interface LossResult {
  /** This rank's Σ cross-entropy over its counted tokens (labels != -100). */
  lossSum: number;
  tokens: number;
  /** Over all ranks: the sequence's mean loss is globalLossSum / globalTokens (= loss). */
  globalLossSum: number;
  globalTokens: number;
  loss: number;
}

export interface EvalResult extends LossResult {
  /**
   * This rank's counted tokens whose label is the strict argmax of their logits (what greedy
   * decoding would produce; a tie for the maximum counts as wrong), and the same over all ranks.
   * Computed inside the chunked cross-entropy: no full logits are kept.
   */
  argmaxCorrect: number;
  globalArgmaxCorrect: number;
}

/**
 * Input embeddings for marked tokens (src/model/input_embeddings.h): V-NIAH's visual tokens, spliced
 * into the sequence in place of token embeddings. Rejected (naming embeddings[i]) when empty, not
 * whole rows, outside the call's tokens or overlapping another span.
 */
export interface EmbeddingSpan {
  /** The span's first token: an index into this call's ids (a zigzag shard in its local order). */
  start: number;
  /** rows × hidden_size float32 values, row-major. */
  rows: Float32Array;
}

export interface MicroStepResult extends LossResult {
  /** Wall seconds of the micro-step not spent waiting for communication. */
  computeSeconds: number;
  /** Seconds blocked on the ring's transfers and on the collectives (label counts, loss sums). */
  commWaitSeconds: number;
  /** Point-to-point payload bytes this rank sent (the ring's K/V and dK/dV blocks). */
  bytesSent: number;
  memory: TrainerMemory;
}

export interface StepResult {
  /** Global L2 norm of the summed gradients, before clipping. */
  gradNorm: number;
  /** What the gradients were scaled by: min(1, gradClip / (gradNorm + 1e-6)), or 1 without clipping. */
  clipCoefficient: number;
  /** Wall seconds of the step not spent waiting for communication. */
  optimizerSeconds: number;
  /** The gradient all-reduce (unless reduceGradients() did it) and the parameter all-gather. */
  commWaitSeconds: number;
  /** AdamW steps taken so far, this one included. */
  adamStep: number;
  memory: TrainerMemory;
}

/** Where a Hugging Face tensor lives in the flat parameter buffer (snapshot().params). */
export interface ParameterView {
  name: string;
  /** In floats. */
  offset: number;
  shape: number[];
  numel: number;
  /** AdamW decays matrices and embeddings, not biases or norm weights. */
  weightDecay: boolean;
}

/** The checkpoint state of one rank; expAvg/expAvgSq cover only its shard [shard.begin, shard.end). */
export interface TrainerState {
  params: Float32Array;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  adamStep: number;
}

export interface Trainer {
  readonly numParameters: number;
  readonly rank: number;
  readonly world: number;
  /** The range of the flat parameters whose AdamW moments this rank owns (ZeRO-1). */
  readonly shard: { begin: number; end: number };
  readonly activationCheckpointing: ActivationCheckpointing;
  readonly offload: Offload;
  /** Where it trains: 'cpu' or 'cuda:<index>'. */
  readonly backend: string;
  /** How device memory travels between ranks, in words (a CUDA rank of a multi-rank job); else empty. */
  readonly collectives: string;
  /** Hugging Face names and flat offsets, in the order of the HF state dict. */
  parameterViews(): ParameterView[];
  /**
   * One micro-batch: this rank's tokens of the sequence (its zigzag shard: ids, global positions,
   * labels already shifted with -100 for ignored; Int32Array of length seq_len / world each).
   * Adds the gradients of (the sequence's mean loss) / accumulationSteps. Rejected after
   * reduceGradients() until step().
   */
  accumulate(
    ids: Int32Array,
    positions: Int32Array,
    labels: Int32Array,
    accumulationSteps: number,
  ): Promise<MicroStepResult>;
  /**
   * The loss only, no gradients (one layer's activations at a time). Collective like accumulate.
   * `embeddings` replace the token embedding lookup at their spans of this call's tokens (each
   * rank passes the rows of its own shard); the ids there are looked up and overwritten.
   */
  evaluate(
    ids: Int32Array,
    positions: Int32Array,
    labels: Int32Array,
    embeddings?: EmbeddingSpan[],
  ): Promise<EvalResult>;
  /**
   * Sums the gradients across ranks now instead of inside step(), e.g. to read them with
   * gradients(); step() then skips its all-reduce.
   */
  reduceGradients(): Promise<{ commWaitSeconds: number }>;
  /** All-reduce (unless done), clip, AdamW on this rank's shard, all-gather; gradients are zero afterwards. */
  step(lr: number): Promise<StepResult>;
  /** A copy of the flat gradient buffer: this rank's sums, or the global sums after reduceGradients(). */
  gradients(): Float32Array;
  /**
   * Copies for a checkpoint. With `into` (an earlier snapshot no longer in use, e.g. one whose save
   * finished) the copies go into its arrays, which must have the same lengths, and the result holds
   * those arrays: no new allocation.
   */
  snapshot(into?: TrainerState): TrainerState;
  /**
   * snapshot(into) with the copy made on a worker thread, for a training loop that saves in the
   * background: only step() and load() change what is copied, so accumulate(), evaluate() and
   * reduceGradients() may run while it copies (the next micro-batch overlaps the copy); step, load,
   * snapshot, startSnapshot and close are refused as busy until the Promise settles. Do not transfer
   * the arrays meanwhile.
   */
  startSnapshot(into?: TrainerState): Promise<TrainerState>;
  /** Loads any part of a checkpoint state; lengths are checked (with the expected numbers) before anything changes. */
  load(state: Partial<TrainerState>): void;
  memory(): TrainerMemory;
  /** Starts new device and host peaks at the current usage. */
  resetPeak(): void;
  /** Frees the trainer's memory now; later calls throw. */
  close(): void;
}

export interface TrainerApi {
  createTrainer(communicator: Communicator | null, options: TrainerOptions): Promise<Trainer>;
}

declare module './native.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface NativeAddon extends TrainerApi {}
}

/**
 * Creates this rank's trainer: allocates parameters, gradients and optimizer state (rejecting with
 * the arena's out-of-memory error, code 'ERR_LONGCTX_OUT_OF_MEMORY', when they do not fit) and
 * initialises the parameters from options.seed. `communicator` null means one rank.
 */
export function createTrainer(communicator: Communicator | null, options: TrainerOptions): Promise<Trainer> {
  return native().createTrainer(communicator, options);
}
