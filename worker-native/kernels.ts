// Types of the CPU kernel and arena bindings (worker-native/src/addon/testing/kernels_binding.cc
// and arena_binding.cc). The kernels are exposed for tests and benchmarks; the trainer calls them
// from C++.
//
// Every kernel works in place on the caller's arrays and resolves when done; the arrays must not
// be touched until then. The fast kernels take Float32Array. Each naive reference takes
// Float32Array or Float64Array (one type for all its float arrays). Backward kernels ADD into
// their gradient arrays (zero them first for a plain backward); naive backwards WRITE them.
// Argument types are checked at once (TypeError naming the argument); bad dimensions or lengths
// reject the Promise with an Error naming the problem. Layouts are row-major.

export type FloatArray = Float32Array | Float64Array;

/** Token embedding: weight [vocab, channels], ids/out [tokens(, channels)]. */
export interface EmbeddingDims {
  tokens: number;
  channels: number;
  vocab: number;
}

/** RMSNorm over the last dimension (Hugging Face Qwen2RMSNorm). */
export interface NormDims {
  tokens: number;
  channels: number;
  eps: number;
}

/** Rotary embedding of x [tokens, heads, headDim] at explicit positions [tokens]. */
export interface RopeDims {
  tokens: number;
  heads: number;
  headDim: number;
  theta: number;
}

/** torch.nn.Linear: weight [outFeatures, inFeatures], x [tokens, inFeatures]. */
export interface LinearDims {
  tokens: number;
  inFeatures: number;
  outFeatures: number;
}

/** SwiGLU MLP: wGate, wUp [intermediate, channels], wDown [channels, intermediate]. */
export interface MlpDims {
  tokens: number;
  channels: number;
  intermediate: number;
}

/** LM head + cross-entropy: hidden [tokens, channels], weight [vocab, channels], labels [tokens]. */
export interface CrossEntropyDims {
  tokens: number;
  channels: number;
  vocab: number;
  /** Rows of logits computed at a time (the chunked kernel needs it; the naive one ignores it). */
  chunkTokens?: number;
}

export interface CrossEntropyResult {
  /** Σ cross-entropy over tokens whose label is not -100. */
  lossSum: number;
  /** How many such tokens. */
  count: number;
  /** Of those, how many have their label as the strict argmax of the logits (a tie counts as wrong). */
  argmaxCorrect: number;
}

/** torch.optim.AdamW hyperparameters (defaults: betas 0.9/0.999, eps 1e-8, weightDecay 0). */
export interface AdamWHyper {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** An arena's counters, in bytes (blocks are counted at their size rounded up to 64). */
export interface ArenaStats {
  current: number;
  peak: number;
  budget: number;
  liveBlocks: number;
}

/** The error an allocation past the budget throws (or a model step rejects with). */
export interface OutOfMemoryError extends Error {
  code: 'ERR_LONGCTX_OUT_OF_MEMORY';
  requested: number;
  inUse: number;
  budget: number;
}

/** One device's (or the host's) counted memory. */
export interface Arena {
  /** Allocates a 64-byte aligned block; returns its id. Throws OutOfMemoryError past the budget. */
  allocate(bytes: number): number;
  free(id: number): void;
  stats(): ArenaStats;
  /** Starts a new high-water mark at the current usage. */
  resetPeak(): void;
}

export interface ArenaConstructor {
  /** label names the memory in errors, e.g. 'device cpu:3' or 'host'. */
  new (label: string, budgetBytes: number): Arena;
}

export interface KernelsApi {
  Arena: ArenaConstructor;

  embeddingForward(
    dims: EmbeddingDims,
    ids: Int32Array,
    weight: Float32Array,
    out: Float32Array,
  ): Promise<void>;
  /** Scatter-adds dout rows into dweight. */
  embeddingBackward(
    dims: EmbeddingDims,
    ids: Int32Array,
    dout: Float32Array,
    dweight: Float32Array,
  ): Promise<void>;
  naiveEmbeddingForward<T extends FloatArray>(
    dims: EmbeddingDims,
    ids: Int32Array,
    weight: T,
    out: T,
  ): Promise<void>;
  naiveEmbeddingBackward<T extends FloatArray>(
    dims: EmbeddingDims,
    ids: Int32Array,
    dout: T,
    dweight: T,
  ): Promise<void>;

  /** Writes out [tokens, channels] and rstd [tokens] (1/rms, saved for the backward). */
  rmsnormForward(
    dims: NormDims,
    x: Float32Array,
    weight: Float32Array,
    out: Float32Array,
    rstd: Float32Array,
  ): Promise<void>;
  rmsnormBackward(
    dims: NormDims,
    x: Float32Array,
    weight: Float32Array,
    rstd: Float32Array,
    dout: Float32Array,
    dx: Float32Array,
    dweight: Float32Array,
  ): Promise<void>;
  naiveRmsnormForward<T extends FloatArray>(dims: NormDims, x: T, weight: T, out: T): Promise<void>;
  naiveRmsnormBackward<T extends FloatArray>(
    dims: NormDims,
    x: T,
    weight: T,
    dout: T,
    dx: T,
    dweight: T,
  ): Promise<void>;

  /** cos, sin [tokens, headDim/2] of position · theta^(-2i/headDim), angles in double. */
  ropeTables(dims: RopeDims, positions: Int32Array, cos: Float32Array, sin: Float32Array): Promise<void>;
  /** Rotates x in place (HF rotate_half). */
  ropeForward(dims: RopeDims, positions: Int32Array, x: Float32Array): Promise<void>;
  /** Rotates a gradient back in place (the inverse rotation). */
  ropeBackward(dims: RopeDims, positions: Int32Array, dx: Float32Array): Promise<void>;
  naiveRope<T extends FloatArray>(
    dims: RopeDims,
    positions: Int32Array,
    x: T,
    out: T,
    inverse: boolean,
  ): Promise<void>;

  linearForward(
    dims: LinearDims,
    x: Float32Array,
    weight: Float32Array,
    bias: Float32Array | null,
    out: Float32Array,
  ): Promise<void>;
  /** Adds into whichever of dx, dweight, dbias are given. */
  linearBackward(
    dims: LinearDims,
    x: Float32Array,
    weight: Float32Array,
    dout: Float32Array,
    dx: Float32Array | null,
    dweight: Float32Array | null,
    dbias: Float32Array | null,
  ): Promise<void>;
  naiveLinearForward<T extends FloatArray>(
    dims: LinearDims,
    x: T,
    weight: T,
    bias: T | null,
    out: T,
  ): Promise<void>;
  naiveLinearBackward<T extends FloatArray>(
    dims: LinearDims,
    x: T,
    weight: T,
    dout: T,
    dx: T,
    dweight: T,
    dbias: T | null,
  ): Promise<void>;

  /** act = silu(gate) · up, elementwise. */
  swigluForward(gate: Float32Array, up: Float32Array, act: Float32Array): Promise<void>;
  swigluBackward(
    gate: Float32Array,
    up: Float32Array,
    dact: Float32Array,
    dgate: Float32Array,
    dup: Float32Array,
  ): Promise<void>;
  naiveSwigluForward<T extends FloatArray>(gate: T, up: T, act: T): Promise<void>;
  naiveSwigluBackward<T extends FloatArray>(gate: T, up: T, dact: T, dgate: T, dup: T): Promise<void>;

  /** out = down(silu(gate(x)) · up(x)). */
  mlpForward(
    dims: MlpDims,
    x: Float32Array,
    wGate: Float32Array,
    wUp: Float32Array,
    wDown: Float32Array,
    out: Float32Array,
  ): Promise<void>;
  mlpBackward(
    dims: MlpDims,
    x: Float32Array,
    wGate: Float32Array,
    wUp: Float32Array,
    wDown: Float32Array,
    dout: Float32Array,
    dx: Float32Array,
    dwGate: Float32Array,
    dwUp: Float32Array,
    dwDown: Float32Array,
  ): Promise<void>;
  naiveMlpForward<T extends FloatArray>(
    dims: MlpDims,
    x: T,
    wGate: T,
    wUp: T,
    wDown: T,
    out: T,
  ): Promise<void>;
  naiveMlpBackward<T extends FloatArray>(
    dims: MlpDims,
    x: T,
    wGate: T,
    wUp: T,
    wDown: T,
    dout: T,
    dx: T,
    dwGate: T,
    dwUp: T,
    dwDown: T,
  ): Promise<void>;

  residualForward(a: Float32Array, b: Float32Array, out: Float32Array): Promise<void>;
  naiveResidualForward<T extends FloatArray>(a: T, b: T, out: T): Promise<void>;
  /** acc += x. */
  addInPlace(acc: Float32Array, x: Float32Array): Promise<void>;

  /**
   * Chunked LM head + cross-entropy: never materialises more than chunkTokens × vocab logits.
   * Adds the gradients of gradScale · lossSum into dhidden and dweight when given.
   */
  crossEntropy(
    dims: CrossEntropyDims,
    hidden: Float32Array,
    weight: Float32Array,
    labels: Int32Array,
    gradScale: number,
    dhidden: Float32Array | null,
    dweight: Float32Array | null,
  ): Promise<CrossEntropyResult>;
  /** Full logits; writes the gradients. */
  naiveCrossEntropy<T extends FloatArray>(
    dims: CrossEntropyDims,
    hidden: T,
    weight: T,
    labels: Int32Array,
    gradScale: number,
    dhidden: T | null,
    dweight: T | null,
  ): Promise<CrossEntropyResult>;

  /** One AdamW step (torch semantics); step counts from 1. Updates params, m, v in place. */
  adamwUpdate(
    hyper: AdamWHyper,
    step: number,
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    v: Float32Array,
  ): Promise<void>;
  /** The textbook formula in the arrays' precision. */
  naiveAdamwUpdate<T extends FloatArray>(
    hyper: AdamWHyper,
    step: number,
    params: T,
    grads: T,
    m: T,
    v: T,
  ): Promise<void>;
  /** Σ x² accumulated in double. */
  sumOfSquares(x: Float32Array): Promise<number>;
  /** min(1, maxNorm / (totalNorm + 1e-6)); maxNorm <= 0 disables clipping (1). */
  clipCoefficient(totalNorm: number, maxNorm: number): number;
  scaleInPlace(x: Float32Array, s: number): Promise<void>;
}

declare module './native.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface NativeAddon extends KernelsApi {}
}
