// What a node has: its kind of device, the devices with their byte budgets, and the host capacity
// behind emulated devices. The node agent detects it (cluster/inventory.ts), the control state
// records it per node, the planner plans for it.

export type DeviceKind = 'cuda' | 'cpu';

export interface DeviceInfo {
  index: number;
  /**
   * The CUDA device a rank placed on this device drives, when it is not `index`: a node file's
   * ranks_per_gpu presents each GPU as several devices (cluster/inventory.ts).
   */
  ordinal?: number;
  name: string;
  /** The device's byte budget: a GPU's memory (or the node file's cap), an emulated device's budget. */
  memoryBytes: number;
}

export interface NodeInventory {
  /** The node's name: in Redis keys and queue names, so letters, digits, '.', '_' and '-'. */
  node: string;
  hostname: string;
  kind: DeviceKind;
  devices: DeviceInfo[];
  /** Host threads each rank may use (BLAS threads of an emulated device): cores / devices, at least 1. */
  threadsPerDevice: number;
  /** Measured (or configured) float32 GEMM rate of one device's threads, for the planner. */
  sgemmGflops?: number;
  /**
   * Host cores the devices share. Emulated devices beyond this count take turns on the cores, so
   * the planner and the MFU figure scale each one's rate down by cores / devices.
   */
  cores?: number;
  /** GPU nodes: what multi-rank jobs communicate with ("NCCL 2.27.3 (...)", or why gloo staging). */
  collectives?: string;
  /** The address other nodes reach this node's ranks on (node file `address`); 127.0.0.1 if unset. */
  address?: string;
}

/**
 * The GPUs a job asks for, as SkyPilot writes them (`accelerators: H200:8`): a GPU model name
 * and how many of them one node must have.
 */
export interface AcceleratorRequest {
  /** As the spec wrote it, e.g. 'H200' or 'A100-80GB'. */
  name: string;
  count: number;
}

/**
 * The model of a GPU name, e.g. 'H200' for 'NVIDIA H200', 'h200' or 'H200-141GB', 'A100' for
 * 'NVIDIA A100-SXM4-80GB': what a request and nvidia-smi's names are compared by.
 */
export function acceleratorModel(name: string): string | undefined {
  return /(?:^|[^A-Z0-9])([A-Z]{1,3}\d{2,4}[A-Z]?)(?![0-9])/.exec(name.toUpperCase())?.[1];
}

/** Whether a node's devices are at least `count` GPUs of the requested model. */
export function nodeHasAccelerators(
  node: { kind: DeviceKind; devices: number; deviceNames: string[] },
  request: AcceleratorRequest,
): boolean {
  const model = acceleratorModel(request.name);
  return (
    node.kind === 'cuda' &&
    model !== undefined &&
    node.devices >= request.count &&
    node.deviceNames.length > 0 &&
    node.deviceNames.every((d) => acceleratorModel(d) === model)
  );
}
