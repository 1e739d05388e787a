// Registers CUDA tests so that they run where they can and are visibly skipped where they cannot:
// a test that needs a device becomes `test.skip` with "(skipped: no GPU)" in its title when the
// process sees no CUDA device, and "(skipped: built without CUDA)" when the addon has no CUDA.
import test, { type ExecutionContext } from 'ava';

import { cudaApi, type CudaApi } from '../../worker-native/cuda.js';
import { native } from '../../worker-native/native.js';

export const api: CudaApi | undefined = cudaApi();
export const devices: number = native().buildInfo().cudaDevices;

/** Why device tests cannot run here, or undefined when they can. */
export const skipReason: string | undefined = !api
  ? 'built without CUDA'
  : devices === 0
    ? 'no GPU'
    : undefined;

type Body = (t: ExecutionContext, cuda: CudaApi) => Promise<void> | void;

/** A test that needs a CUDA device. */
export function gpuTest(title: string, body: Body): void {
  if (api && !skipReason) test(title, (t) => body(t, api));
  else test.skip(`${title} (skipped: ${skipReason ?? 'unknown'})`, () => {});
}

/** A test that needs a CUDA build but no device (host-side parts, argument checks). */
export function cudaBuildTest(title: string, body: Body): void {
  if (api) test(title, (t) => body(t, api));
  else test.skip(`${title} (skipped: built without CUDA)`, () => {});
}
