// What the planner knows about a device: its memory, its peak matrix-multiply rate, and how fast
// it moves bytes to host memory and to its ring neighbour. CPU devices are measured on the node
// (sgemm rate, in the inventory); GPUs come from their datasheets (dense bf16 tensor-core peak,
// no sparsity).
import { acceleratorModel } from '../../core/devices.js';

export interface DeviceProfile {
  kind: 'cpu' | 'cuda';
  name: string;
  memoryBytes: number;
  /** FLOP/s of a large matrix product in the job's precision. */
  peakFlops: number;
  /** Host ↔ device copies (offload). */
  hostLinkBytesPerSecond: number;
  /** Rank → rank (the ring). */
  ringBytesPerSecond: number;
}

const GiB = 2 ** 30;

/** Datasheet numbers (dense bf16; NVLink/PCIe one direction). */
export const GPU_PROFILES: Record<string, Omit<DeviceProfile, 'kind'>> = {
  'A100-80GB': {
    name: 'A100-80GB',
    memoryBytes: 80 * GiB,
    peakFlops: 312e12,
    hostLinkBytesPerSecond: 25e9,
    ringBytesPerSecond: 300e9,
  },
  'H100-80GB': {
    name: 'H100-80GB',
    memoryBytes: 80 * GiB,
    peakFlops: 989e12,
    hostLinkBytesPerSecond: 50e9,
    ringBytesPerSecond: 450e9,
  },
  'H200-141GB': {
    name: 'H200-141GB',
    memoryBytes: 141 * GiB,
    peakFlops: 989e12,
    hostLinkBytesPerSecond: 50e9,
    ringBytesPerSecond: 450e9,
  },
};

/** The GPU models with datasheet numbers ('A100', 'H100', 'H200'). */
export function knownAcceleratorModels(): string[] {
  return Object.keys(GPU_PROFILES).map((key) => acceleratorModel(key)!);
}

/**
 * The datasheet profile of a GPU named by nvidia-smi ("NVIDIA H200", "NVIDIA A100-SXM4-80GB") or
 * by a spec's resources.accelerators ("H200", "H100-80GB"), matched by model (core/devices.ts).
 */
export function gpuProfileFor(name: string, memoryBytes?: number): DeviceProfile | undefined {
  const model = acceleratorModel(name);
  const key = Object.keys(GPU_PROFILES).find((k) => model !== undefined && acceleratorModel(k) === model);
  if (!key) return undefined;
  const p = GPU_PROFILES[key]!;
  return { kind: 'cuda', ...p, memoryBytes: memoryBytes ?? p.memoryBytes };
}

/**
 * The matmul rate one emulated device really gets. The agent measures sgemm with one device's
 * share of threads (at least one); when a node has more devices than cores, the devices' worker
 * processes take turns on the cores, so each gets cores / devices of that rate. Without this the
 * demo (8 devices on 2 cores) was planned at 0.53 s per step and took 2.2–2.5 s.
 */
export function emulatedDeviceGflops(sgemmGflops: number, devices: number, cores?: number): number {
  if (cores === undefined || devices <= 0) return sgemmGflops;
  return sgemmGflops * Math.min(1, cores / devices);
}

/**
 * An emulated CPU device: its budget, its rate (emulatedDeviceGflops), memcpy for
 * "offload" between the device and host arenas, and loopback TCP for the ring (measured on the
 * development machine: about 0.4 GB/s per direction through gloo).
 */
export function cpuProfile(memoryBytes: number, sgemmGflops: number): DeviceProfile {
  return {
    kind: 'cpu',
    name: 'cpu',
    memoryBytes,
    peakFlops: sgemmGflops * 1e9,
    hostLinkBytesPerSecond: 8e9,
    ringBytesPerSecond: 0.4e9,
  };
}
