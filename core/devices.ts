// What a node has: its kind of device, the devices with their byte budgets, and the host capacity
// behind emulated devices. The node agent detects it (cluster/inventory.ts), the control state
// records it per node, the planner plans for it.

export type DeviceKind = 'cuda' | 'cpu';

export interface DeviceInfo {
  index: number;
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
}
