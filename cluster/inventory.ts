// A node's devices: the CUDA GPUs the native addon sees (nvidia-smi as the fallback where the
// addon has no CUDA), or N emulated CPU devices, each with a byte budget (the arena of a worker
// refuses to allocate past it). A node file (YAML or JSON) names
// the node and overrides what is detected; it is validated like a job spec, every problem named
// by its field. The CPU sgemm rate is part of the inventory because the planner turns FLOPs into
// seconds with it.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { cpus, networkInterfaces, hostname as osHostname } from 'node:os';
import { parseDocument } from 'yaml';

import type { FieldError } from '../core/job-spec.js';
import type { DeviceInfo, DeviceKind, NodeInventory } from '../core/devices.js';

export type { DeviceInfo, DeviceKind, NodeInventory };

/** What a node file may say; every field is optional. */
export interface NodeFile {
  node?: string;
  /** auto (default): CUDA when the node has GPUs, else emulated CPU devices. */
  kind?: 'auto' | DeviceKind;
  /** cpu: how many emulated devices (default 8); cuda: use the first N GPUs. */
  devices?: number;
  /** Bytes per device: an emulated device's budget (default 2 GiB), or a cap on each GPU's. */
  device_memory?: number;
  /** The sgemm rate to report instead of measuring it. */
  sgemm_gflops?: number;
  /**
   * GPU nodes: present each GPU as this many devices, each with 1/N of its memory, so N ranks share
   * it (default 1: a rank per GPU). For tests and small experiments on hosts with few GPUs: ranks
   * that share a GPU exchange through host memory (NCCL refuses them) and take turns on its SMs.
   */
  ranks_per_gpu?: number;
  /**
   * The address of this machine that the other nodes reach its ranks on: ranks listen there for
   * their peers (gloo TCP) when a gang spans nodes. Default 127.0.0.1: one node only.
   */
  address?: string;
}

/** Where ranks listen for their peers unless the node file gives an `address`. */
export const DEFAULT_RANK_ADDRESS = '127.0.0.1';

export const DEFAULT_EMULATED_DEVICES = 8;
export const DEFAULT_DEVICE_MEMORY = 2 * 1024 ** 3;
export const NODE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A node file (or inventory request) that cannot be used, with every problem by field. */
export class NodeFileError extends Error {
  constructor(
    readonly errors: FieldError[],
    readonly file?: string,
  ) {
    super(errors.map((e) => `${file ? `${file}: ` : ''}${e.path || '(root)'}: ${e.reason}`).join('\n'));
    this.name = 'NodeFileError';
  }
}

const UNITS: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
};

/** Bytes from a whole number or a string like '512 MiB' / '2GiB'; undefined when unreadable. */
export function parseBytes(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/.exec(value);
  if (!m) return undefined;
  const unit = UNITS[m[2] ?? 'B'];
  if (unit === undefined) return undefined;
  const bytes = Math.round(Number(m[1]) * unit);
  return bytes > 0 ? bytes : undefined;
}

const NODE_FILE_FIELDS = [
  'node',
  'kind',
  'devices',
  'device_memory',
  'sgemm_gflops',
  'ranks_per_gpu',
  'address',
];

/** Validates a node file's text (YAML or JSON); throws NodeFileError listing every problem. */
export function parseNodeFile(text: string, file = '<node file>'): NodeFile {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new NodeFileError(
      doc.errors.map((e) => ({ path: '', reason: `YAML: ${e.message.split('\n')[0]}` })),
      file,
    );
  }
  const raw = doc.toJS() as unknown;
  const errors: FieldError[] = [];
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new NodeFileError([{ path: '', reason: 'must be a mapping of node settings' }], file);
  }
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!NODE_FILE_FIELDS.includes(key)) {
      errors.push({ path: key, reason: `unknown field (known: ${NODE_FILE_FIELDS.join(', ')})` });
    }
  }
  const out: NodeFile = {};
  if (obj.node !== undefined) {
    if (typeof obj.node !== 'string' || !NODE_NAME_PATTERN.test(obj.node)) {
      errors.push({
        path: 'node',
        reason: `must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit, got ${JSON.stringify(obj.node)}`,
      });
    } else out.node = obj.node;
  }
  if (obj.kind !== undefined) {
    if (obj.kind !== 'auto' && obj.kind !== 'cpu' && obj.kind !== 'cuda') {
      errors.push({
        path: 'kind',
        reason: `must be 'auto', 'cpu' or 'cuda', got ${JSON.stringify(obj.kind)}`,
      });
    } else out.kind = obj.kind;
  }
  if (obj.devices !== undefined) {
    const d = obj.devices;
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > 1024) {
      errors.push({
        path: 'devices',
        reason: `must be a whole number from 1 to 1024, got ${JSON.stringify(d)}`,
      });
    } else out.devices = d;
  }
  if (obj.device_memory !== undefined) {
    const bytes = parseBytes(obj.device_memory);
    if (bytes === undefined) {
      errors.push({
        path: 'device_memory',
        reason: `must be a positive whole number of bytes or a size like '2 GiB', got ${JSON.stringify(obj.device_memory)}`,
      });
    } else out.device_memory = bytes;
  }
  if (obj.sgemm_gflops !== undefined) {
    const g = obj.sgemm_gflops;
    if (typeof g !== 'number' || !(g > 0) || !Number.isFinite(g)) {
      errors.push({ path: 'sgemm_gflops', reason: `must be a positive number, got ${JSON.stringify(g)}` });
    } else out.sgemm_gflops = g;
  }
  if (obj.ranks_per_gpu !== undefined) {
    const r = obj.ranks_per_gpu;
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r > 64) {
      errors.push({
        path: 'ranks_per_gpu',
        reason: `must be a whole number from 1 to 64, got ${JSON.stringify(r)}`,
      });
    } else if (out.kind === 'cpu') {
      errors.push({ path: 'ranks_per_gpu', reason: "is for GPU nodes, but kind is 'cpu'" });
    } else out.ranks_per_gpu = r;
  }
  if (obj.address !== undefined) {
    const a = obj.address;
    if (typeof a !== 'string' || isIP(a) === 0) {
      errors.push({
        path: 'address',
        reason: `must be an IPv4 or IPv6 address of this machine that the other nodes reach, got ${JSON.stringify(a)}`,
      });
    } else if (a === '0.0.0.0' || a === '::') {
      // Peers connect to the address a rank publishes: a wildcard names no machine.
      errors.push({ path: 'address', reason: `must be one address the other nodes reach, not ${a}` });
    } else out.address = a;
  }
  if (errors.length > 0) throw new NodeFileError(errors, file);
  return out;
}

/** The addresses of this machine's network interfaces (in its network namespace). */
function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((i) => i.address);
}

export function loadNodeFile(path: string): NodeFile {
  if (!existsSync(path)) throw new NodeFileError([{ path: '', reason: 'file does not exist' }], path);
  return parseNodeFile(readFileSync(path, 'utf8'), path);
}

/**
 * GPUs from `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`:
 * one line per GPU, memory in MiB. A line that does not read is an error naming it.
 */
export function parseNvidiaSmi(csv: string): DeviceInfo[] {
  const devices: DeviceInfo[] = [];
  for (const line of csv.split('\n')) {
    if (line.trim() === '') continue;
    const parts = line.split(',').map((p) => p.trim());
    const index = Number(parts[0]);
    const mib = Number(parts[parts.length - 1]);
    const name = parts.slice(1, -1).join(',');
    if (parts.length < 3 || !Number.isInteger(index) || index < 0 || !(mib > 0) || name === '') {
      throw new Error(`nvidia-smi: cannot read the line '${line}' (expected 'index, name, memory MiB')`);
    }
    devices.push({ index, name, memoryBytes: mib * 1024 * 1024 });
  }
  return devices.sort((a, b) => a.index - b.index);
}

/** The GPUs nvidia-smi lists; none when it is not installed or cannot talk to a driver. */
export async function queryNvidiaSmi(command = 'nvidia-smi'): Promise<DeviceInfo[]> {
  const output = await new Promise<string | undefined>((resolve) => {
    execFile(
      command,
      ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'],
      { timeout: 10_000 },
      (err, stdout) => resolve(err ? undefined : stdout),
    );
  });
  return output === undefined ? [] : parseNvidiaSmi(output);
}

/** The GPUs the addon's CUDA runtime sees, and what its GPU ranks would communicate with. */
export interface AddonGpus {
  devices: DeviceInfo[];
  /** e.g. "NCCL 2.27.3 (...)" or "NCCL not found: using gloo host staging (...)". */
  collectives: string;
}

/** The addon's view of the GPUs; undefined when the addon is not built or has no CUDA. */
export async function queryAddonGpus(): Promise<AddonGpus | undefined> {
  const { addonPath } = await import('../worker-native/native.js');
  if (!existsSync(addonPath)) return undefined;
  const { cudaApi } = await import('../worker-native/cuda.js');
  const cuda = cudaApi();
  if (!cuda) return undefined;
  const info = cuda.cudaBackendInfo();
  return {
    devices: info.deviceNames.map((name, index) => ({
      index,
      name,
      memoryBytes: info.deviceMemoryBytes[index] ?? 0,
    })),
    collectives: info.collectives,
  };
}

export interface InventoryOptions {
  nodeFile?: NodeFile;
  /** The nvidia-smi to ask when the addon sees no GPU; false: do not look for GPUs at all. */
  nvidiaSmi?: string | false;
  /** Ask the native addon for GPUs first (default true). */
  addonGpus?: boolean;
  /** Measures one device's sgemm rate in GFLOP/s (e.g. nativeSgemmRate()); skipped when absent. */
  measureSgemm?: (threads: number) => Promise<number>;
  hostname?: string;
  /** Host cores to share among the devices (default: this machine's). */
  cores?: number;
  /** The node file's path, named in errors about what it says. */
  nodeFilePath?: string;
  /** This machine's addresses (default: its network interfaces'); `address` must be one of them. */
  localAddresses?: string[];
}

/** The node's inventory: nvidia-smi's GPUs or emulated CPU devices, shaped by the node file. */
export async function detectInventory(options: InventoryOptions = {}): Promise<NodeInventory> {
  const file = options.nodeFile ?? {};
  const hostname = options.hostname ?? osHostname();
  if (file.address !== undefined) {
    const own = options.localAddresses ?? localAddresses();
    if (!own.includes(file.address)) {
      throw new NodeFileError(
        [
          {
            path: 'address',
            reason: `${file.address} is not an address of this machine (it has ${own.join(', ') || 'none'})`,
          },
        ],
        options.nodeFilePath,
      );
    }
  }
  const node = file.node ?? hostname.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63);
  if (!NODE_NAME_PATTERN.test(node)) {
    throw new NodeFileError([
      { path: 'node', reason: `the hostname '${hostname}' is not a usable node name; set 'node'` },
    ]);
  }
  const kind = file.kind ?? 'auto';
  const lookForGpus = kind !== 'cpu' && options.nvidiaSmi !== false;
  // The addon first: it is what the ranks will train with, and it needs no nvidia-smi on PATH.
  const fromAddon = lookForGpus && options.addonGpus !== false ? await queryAddonGpus() : undefined;
  const gpus =
    fromAddon && fromAddon.devices.length > 0
      ? fromAddon.devices
      : lookForGpus
        ? await queryNvidiaSmi(options.nvidiaSmi || undefined)
        : [];
  let devices: DeviceInfo[];
  let deviceKind: DeviceKind;
  if (gpus.length > 0 && kind !== 'cpu') {
    if (file.devices !== undefined && file.devices > gpus.length) {
      throw new NodeFileError([
        { path: 'devices', reason: `${file.devices} requested but this node has ${gpus.length} GPUs` },
      ]);
    }
    const cap = file.device_memory;
    const share = file.ranks_per_gpu ?? 1;
    devices = gpus.slice(0, file.devices ?? gpus.length).flatMap((g, i) => {
      const memoryBytes = Math.floor(
        (cap === undefined ? g.memoryBytes : Math.min(cap, g.memoryBytes)) / share,
      );
      if (share === 1) return [{ ...g, memoryBytes }];
      return Array.from({ length: share }, (_, r) => ({
        ...g,
        index: i * share + r,
        ordinal: g.index,
        memoryBytes,
      }));
    });
    deviceKind = 'cuda';
  } else {
    if (kind === 'cuda') {
      throw new NodeFileError([
        { path: 'kind', reason: "'cuda' but neither the CUDA runtime nor nvidia-smi sees a GPU" },
      ]);
    }
    const count = file.devices ?? DEFAULT_EMULATED_DEVICES;
    const budget = file.device_memory ?? DEFAULT_DEVICE_MEMORY;
    devices = Array.from({ length: count }, (_, index) => ({ index, name: 'cpu', memoryBytes: budget }));
    deviceKind = 'cpu';
  }
  const cores = options.cores ?? cpus().length;
  const threadsPerDevice = Math.max(1, Math.floor(cores / devices.length));
  let sgemmGflops = file.sgemm_gflops;
  if (sgemmGflops === undefined && options.measureSgemm) {
    sgemmGflops = await options.measureSgemm(threadsPerDevice);
  }
  const collectives = deviceKind === 'cuda' ? fromAddon?.collectives : undefined;
  return {
    node,
    hostname,
    kind: deviceKind,
    devices,
    threadsPerDevice,
    sgemmGflops,
    cores,
    ...(collectives ? { collectives } : {}),
    ...(file.address ? { address: file.address } : {}),
  };
}

/**
 * The sgemm rate of one device's share of the host, measured by the native addon (which must be
 * built). n=512 and a few iterations take well under a second on one core.
 */
export function nativeSgemmRate(n = 512, iterations = 4): (threads: number) => Promise<number> {
  return async (threads) => {
    const { native } = await import('../worker-native/native.js');
    const addon = native();
    addon.setBlasThreads(threads);
    await addon.measureSgemm(n, 1); // warm-up: first-touch of the matrices and BLAS thread start
    const rate = await addon.measureSgemm(n, iterations);
    return rate.gflops;
  };
}
