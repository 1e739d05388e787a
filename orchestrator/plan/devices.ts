// What the planner knows about a device: its memory, its peak matrix-multiply rate, and how fast
// it moves bytes to host memory and to its ring neighbour. CPU devices are measured on the node
// (sgemm rate, in the inventory); GPUs come from their datasheets (dense bf16 tensor-core peak,
// no sparsity).
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

/** Matches an nvidia-smi name ("NVIDIA H200", "NVIDIA A100-SXM4-80GB") to a datasheet profile. */
export function gpuProfileFor(name: string, memoryBytes?: number): DeviceProfile | undefined {
  const n = name.toUpperCase();
  const key = n.includes('H200')
    ? 'H200-141GB'
    : n.includes('H100')
      ? 'H100-80GB'
      : n.includes('A100')
        ? 'A100-80GB'
        : undefined;
  if (!key) return undefined;
  const p = GPU_PROFILES[key]!;
  return { kind: 'cuda', ...p, memoryBytes: memoryBytes ?? p.memoryBytes };
}

/**
 * An emulated CPU device: its budget, the node's measured single-thread sgemm rate, memcpy for
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
