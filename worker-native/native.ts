// The one typed entry point to the native addon. Every TypeScript module that needs native code
// imports it from here; the per-area interfaces live beside the code that wraps them.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

import { repoRoot } from '../core/repo-root.js';

/** What the addon was built with, and what CUDA devices this process can see. */
export interface BuildInfo {
  blas: string;
  blasThreads: number;
  cuda: boolean;
  cudaDevices: number;
  cudaDeviceNames: string[];
}

export interface SgemmRate {
  gflops: number;
  seconds: number;
  iterations: number;
}

export interface SystemApi {
  buildInfo(): BuildInfo;
  /** Threads OpenBLAS may use in this process (one emulated device = one process). */
  setBlasThreads(threads: number): void;
  /** Times n×n×n float32 sgemm; rejects with the native message on bad input. */
  measureSgemm(
    n: number,
    iterations: number,
    onProgress?: (p: { iteration: number; of: number }) => void,
  ): Promise<SgemmRate>;
}

// Extended by the comm and kernels modules through declaration merging.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface NativeAddon extends SystemApi {}

export const addonPath = resolve(repoRoot, 'build/native/Release/longctx.node');

let loaded: NativeAddon | undefined;

/** Loads the addon once; a missing build is an error that says how to make it. */
export function native(): NativeAddon {
  if (loaded) return loaded;
  if (!existsSync(addonPath)) {
    throw new Error(`native addon not built: ${addonPath} is missing (run 'make build')`);
  }
  const require = createRequire(import.meta.url);
  loaded = require(addonPath) as NativeAddon;
  return loaded;
}
