// Types of the CUDA backend's bindings (worker-native/src/addon/cuda_binding.cc and, for the
// kernels one at a time, testing/cuda_kernels_binding.cc).
//
// The functions exist only in an addon built with CUDA (`buildInfo().cuda`); `cudaApi()` returns
// them typed, or undefined for a CPU-only build. Kernels need a visible device
// (`buildInfo().cudaDevices > 0`); without one they reject with an Error that says so.
//
// Every kernel binding uploads host arrays, runs on device 0 and resolves with new arrays. Tensors
// the kernel stores in bf16 are rounded on upload (round to nearest even, as cudaRoundToBf16) and
// come back as the exact float32 widening of their bf16 values. Layouts are row-major and
// token-major, as the CPU kernels':
//   attention q, o, dout, dq: [qLen, heads, headDim];  k, v, dk, dv: [kvLen, kvHeads, headDim];
//   lse: [qLen, heads].
// Argument types are checked at once (TypeError); sizes, lengths and values reject the Promise
// with an Error naming the problem.
import type { Communicator } from './comm.js';
import { native } from './native.js';

/** As the CPU kernels' AttentionMask (worker-native/attention.ts). */
export type CudaAttentionMask = 'none' | 'causal';

/** As the CPU kernels' AttentionDims; the GPU kernels take headDim 64 or 128. */
export interface CudaAttentionDims {
  qLen: number;
  kvLen: number;
  heads: number;
  /** Must divide heads; query head h reads kv head floor(h / (heads / kvHeads)). */
  kvHeads: number;
  headDim: number;
  /** Softmax scale; defaults to 1/sqrt(headDim). */
  scale?: number;
}

/** A library the addon opens at run time (cuBLASLt, NCCL): where it was found, or why not. */
export interface RuntimeLibrary {
  /** A file of that name was opened. */
  found: boolean;
  /** ...and it has every function we call, at a version we support. */
  usable: boolean;
  path: string;
  /** The library's own version number (cublasLtGetVersion, ncclGetVersion); 0 when unknown. */
  version: number;
  /** Why it is not usable: every place tried (LONGCTX_CUDA_LIBRARY_PATH, then the loader's path), or what it lacks. */
  error: string;
}

export interface CudaBackendInfo {
  devices: number;
  deviceNames: string[];
  /** Total memory of each device, bytes. */
  deviceMemoryBytes: number[];
  /** cuBLASLt is usable: GEMMs use it unless asked for the tiled kernel. */
  cublasLt: boolean;
  /** NCCL is usable (otherwise GPU ranks communicate through host-staged gloo). */
  nccl: boolean;
  libraries: { cublasLt: RuntimeLibrary; nccl: RuntimeLibrary };
  /** What a multi-rank GPU job would use, in words: "NCCL 2.27.3 (...)" or "NCCL not found: using gloo host staging (...)". */
  collectives: string;
}

/** One state of the device arena's ledger after an operation of cudaArenaReplay. */
export interface ArenaState {
  /** Where an alloc op placed its block. */
  offset?: number;
  current: number;
  peak: number;
  liveBlocks: number;
  largestFree: number;
}

/** Allocate `alloc` bytes, or free the block allocated by op number `free`. */
export type ArenaOp = { alloc: number } | { free: number };

/** The arena's out-of-memory error carries its numbers. */
export interface ArenaOutOfMemory extends Error {
  requested: number;
  inUse: number;
  budget: number;
  op: number;
}

export interface GemmOptions {
  /** A is stored [k, m] and used transposed. */
  transA?: boolean;
  /** B is stored [n, k] and used transposed. */
  transB?: boolean;
  m: number;
  n: number;
  k: number;
  alpha?: number;
  /** C is read (and must be given) when beta != 0. */
  beta?: number;
  out?: 'float32' | 'bf16';
  backend?: 'auto' | 'tiled' | 'cublasLt';
}

export interface CrossEntropyDims {
  tokens: number;
  channels: number;
  vocab: number;
  chunkTokens: number;
}

export interface CrossEntropyOutput {
  lossSum: number;
  count: number;
  /** bf16 values; present when backward was asked for. */
  dhidden?: Float32Array;
  /** float32; present when backward was asked for. */
  dweight?: Float32Array;
}

export interface AdamWHyper {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface CudaApi {
  cudaBackendInfo(): CudaBackendInfo;
  /** Host-side float32 → bf16 → float32 (round to nearest even); needs no device. */
  cudaRoundToBf16(x: Float32Array): Float32Array;
  /** Replays ops through the device arena's ledger (host only); throws ArenaOutOfMemory. */
  cudaArenaReplay(budget: number, ops: ArenaOp[]): ArenaState[];

  cudaRmsNormForward(
    x: Float32Array,
    weight: Float32Array,
    tokens: number,
    channels: number,
    eps: number,
  ): Promise<{ out: Float32Array; rstd: Float32Array }>;
  cudaRmsNormBackward(
    dout: Float32Array,
    x: Float32Array,
    weight: Float32Array,
    rstd: Float32Array,
    tokens: number,
    channels: number,
  ): Promise<{ dx: Float32Array; dweight: Float32Array }>;
  /** cos and sin, each [positions.length, headDim/2], computed in double and rounded to float32. */
  cudaRopeTables(
    positions: Int32Array,
    headDim: number,
    theta: number,
  ): Promise<{ cos: Float32Array; sin: Float32Array }>;
  /** Rotates x [positions.length, heads, headDim] by +angle (or −angle when inverse). */
  cudaRope(
    x: Float32Array,
    positions: Int32Array,
    heads: number,
    headDim: number,
    theta: number,
    inverse: boolean,
  ): Promise<{ out: Float32Array }>;
  cudaSwiGluForward(gate: Float32Array, up: Float32Array): Promise<{ act: Float32Array }>;
  cudaSwiGluBackward(
    dact: Float32Array,
    gate: Float32Array,
    up: Float32Array,
  ): Promise<{ dgate: Float32Array; dup: Float32Array }>;
  cudaResidualForward(a: Float32Array, b: Float32Array): Promise<{ out: Float32Array }>;
  /** c = alpha·op(a)·op(b) + beta·c, row-major. */
  cudaGemm(
    options: GemmOptions,
    a: Float32Array,
    b: Float32Array,
    c?: Float32Array,
  ): Promise<{ c: Float32Array }>;
  cudaCrossEntropy(
    hidden: Float32Array,
    weight: Float32Array,
    labels: Int32Array,
    dims: CrossEntropyDims,
    gradScale: number,
    backward: boolean,
  ): Promise<CrossEntropyOutput>;
  cudaAdamW(
    hyper: AdamWHyper,
    step: number,
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    v: Float32Array,
  ): Promise<{ params: Float32Array; m: Float32Array; v: Float32Array; paramsBf16: Float32Array }>;
  cudaSumOfSquares(x: Float32Array): Promise<{ sum: number }>;
  cudaFlashAttentionForward(
    dims: CudaAttentionDims,
    mask: CudaAttentionMask,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
  ): Promise<{ o: Float32Array; lse: Float32Array }>;
  /**
   * The gradients (float32) of the attention whose final output and lse are o and lse, added to
   * `accumulate` when given (else to zeros), as ring attention accumulates them.
   */
  cudaFlashAttentionBackward(
    dims: CudaAttentionDims,
    mask: CudaAttentionMask,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    o: Float32Array,
    lse: Float32Array,
    dout: Float32Array,
    accumulate?: { dq: Float32Array; dk: Float32Array; dv: Float32Array },
  ): Promise<{ dq: Float32Array; dk: Float32Array; dv: Float32Array }>;
  /**
   * Mean device milliseconds of one forward and of one forward + backward on random inputs (CUDA
   * events, after a warm-up): for benchmarks.
   */
  cudaTimeAttention(
    dims: CudaAttentionDims,
    mask: CudaAttentionMask,
    iterations: number,
  ): Promise<{ forwardMs: number; forwardBackwardMs: number }>;
  /** Streams layerCount equal layers through a PrefetchQueue of `slots`; out = 2·layers. */
  cudaPrefetchRoundTrip(
    layers: Float32Array,
    layerCount: number,
    slots: number,
  ): Promise<{ out: Float32Array }>;
  /** Mean device ms of one GEMM (beta 0, output bf16 by default) on random device operands. */
  cudaTimeGemm(options: Omit<GemmOptions, 'alpha' | 'beta'>, iterations: number): Promise<{ ms: number }>;
  /**
   * Device collectives ('auto' | 'nccl' | 'staged') over a communicator's ranks, on device 0: x
   * all-reduced, then passed one rank along the ring. Every rank of the communicator calls it.
   */
  cudaCollectivesRoundTrip(
    communicator: Communicator,
    choice: 'auto' | 'nccl' | 'staged',
    x: Float32Array,
  ): Promise<{ allReduced: Float32Array; received: Float32Array; description: string; note: string }>;
  /** x through HostStaging's all-reduce and send/recv on a world of one rank. */
  cudaHostStagingRoundTrip(x: Float32Array): Promise<{ allReduced: Float32Array; received: Float32Array }>;
}

declare module './native.js' {
  // Present only in CUDA builds, hence optional.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface NativeAddon extends Partial<CudaApi> {}
}

/** The CUDA functions of the loaded addon, or undefined when it was built without CUDA. */
export function cudaApi(): CudaApi | undefined {
  const addon = native();
  if (!addon.buildInfo().cuda) return undefined;
  const api = addon as Partial<CudaApi>;
  if (typeof api.cudaBackendInfo !== 'function')
    throw new Error('the addon reports a CUDA build but has no cuda* functions');
  return api as CudaApi;
}
