// Types of the CPU attention kernels' bindings (worker-native/src/addon/testing/attention_binding.cc).
//
// Layouts are token-major and row-major, as in kernels/cpu/attention.h:
//   q, o, dout, dq : [qLen,  heads,   headDim]
//   k, v, dk, dv   : [kvLen, kvHeads, headDim]
//   lse            : [qLen,  heads]   natural-log log-sum-exp of each query row
// Every kernel works in place on the caller's arrays and resolves when done; the arrays must not
// be touched until then. Argument types are checked at once (TypeError); bad dimensions or array
// lengths reject the Promise with an Error naming the problem.

export type AttentionMask = 'none' | 'causal';

export interface AttentionDims {
  qLen: number;
  kvLen: number;
  heads: number;
  /** Must divide heads; query head h reads kv head floor(h / (heads / kvHeads)). */
  kvHeads: number;
  headDim: number;
  /** Softmax scale; defaults to 1/sqrt(headDim). */
  scale?: number;
}

/** Floats of scratch memory the flash kernels use: O(block), independent of the sequence length. */
export interface AttentionWorkspace {
  forward: number;
  backward: number;
}

export type FloatArray = Float32Array | Float64Array;

/** Instruction sets of the row kernels (exp, max, sums between the GEMMs); all give equal bits. */
export type AttentionRowIsa = 'scalar' | 'avx2' | 'avx512';

export interface AttentionApi {
  /** Writes o and lse. Causal needs qLen == kvLen. */
  flashAttentionForward(
    dims: AttentionDims,
    mask: AttentionMask,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    o: Float32Array,
    lse: Float32Array,
  ): Promise<void>;
  /** Adds the gradients into dq, dk, dv (zero them first for a plain backward). */
  flashAttentionBackward(
    dims: AttentionDims,
    mask: AttentionMask,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    o: Float32Array,
    lse: Float32Array,
    dout: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
  ): Promise<void>;
  /** Throws an Error naming the problem for bad dims. */
  flashAttentionWorkspace(dims: AttentionDims): AttentionWorkspace;
  /** Merges (oPart, lsePart) into (oAcc, lseAcc) in place; rows = qLen·heads. */
  mergeAttentionPartial(
    rows: number,
    headDim: number,
    oAcc: Float32Array,
    lseAcc: Float32Array,
    oPart: Float32Array,
    lsePart: Float32Array,
  ): Promise<void>;
  /** The materialising reference, in the precision of the arrays (all of one type). */
  naiveAttentionForward<T extends FloatArray>(
    dims: AttentionDims,
    mask: AttentionMask,
    q: T,
    k: T,
    v: T,
    o: T,
    lse: T,
  ): Promise<void>;
  /** Writes (does not add) dq, dk, dv. */
  naiveAttentionBackward<T extends FloatArray>(
    dims: AttentionDims,
    mask: AttentionMask,
    q: T,
    k: T,
    v: T,
    dout: T,
    dq: T,
    dk: T,
    dv: T,
  ): Promise<void>;
  /** The row-kernel instruction sets usable here, narrowest first (for tests). */
  attentionRowIsas(): AttentionRowIsa[];
  /** Replaces x by exp(x - shift) and returns their sum, synchronously (for tests). */
  attentionRowExpShiftSum(isa: AttentionRowIsa, x: Float32Array, shift: number): number;
  /** The maximum of x, -Infinity when empty, synchronously (for tests). */
  attentionRowMax(isa: AttentionRowIsa, x: Float32Array): number;
}

declare module './native.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface NativeAddon extends AttentionApi {}
}
