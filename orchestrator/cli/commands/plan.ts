// `longctx plan SPEC`: what the planner predicts for a job on this machine's devices, without a
// server: per-rank memory by category, the policy it would choose, the zigzag shard map, step and
// total time, and with --max-context the longest context that fits. --remote asks the server
// instead, which plans for the nodes that registered with it (and checks the data file too).
import { existsSync } from 'node:fs';

import {
  detectInventory,
  loadNodeFile,
  nativeSgemmRate,
  type NodeInventory,
} from '../../../cluster/inventory.js';
import { addonPath } from '../../../worker-native/native.js';
import { GPU_PROFILES } from '../../plan/devices.js';
import { maxContext, planJob } from '../../plan/planner.js';
import type { NodeStatus } from '../../../control/store.js';
import { planningDevice } from '../../rpc/control-service.js';
import { parseSpec } from '../../spec/validate.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, UsageError, type Args } from '../args.js';
import { withClient, writeJson, type CliIo, type Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { formatBytes, str } from '../format.js';
import { planViewFromProto, planViewFromResult, renderPlan, type PlanView } from '../plan-view.js';
import { fieldErrorLines, readSpec } from './submit.js';

const HELP = `Usage: longctx plan SPEC [options]

Plans the job spec SPEC for this machine's devices (nvidia-smi's GPUs, or 8 emulated CPU devices
with the node file's budget), without a server: per-rank device memory by category, the
activation-checkpointing and offload policy chosen, the zigzag shard map, estimated step and total
time. Exit 5 when the spec is invalid or nothing fits (with the smallest change that would fit).
The data file is not checked here; 'submit' (and --remote) check it.

Options:
  --max-context            also find the longest seq_len that fits (auto policies)
  --node-file FILE         describe this node as the agent's --node-file does (devices, budget)
  --sgemm-gflops N         one CPU device's matmul rate; measured with the native addon if omitted
  --no-gpu                 plan for emulated CPU devices even where nvidia-smi lists GPUs
  --device NAME            plan for the spec's device count of this GPU instead of this machine's
                           devices (datasheet numbers): ${Object.keys(GPU_PROFILES).join(', ')}
  --remote                 ask the server to plan it for its registered nodes instead
  --json                   print {feasible, source, device, plan, maxSeqLen, suggestion, errors}
${CONNECTION_HELP}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

/** The inventory as the server's node table would hold it, so local and remote plans agree. */
function asNodeStatus(inventory: NodeInventory): NodeStatus {
  return {
    name: inventory.node,
    hostname: inventory.hostname,
    kind: inventory.kind,
    devices: inventory.devices.length,
    deviceNames: inventory.devices.map((d) => d.name),
    deviceMemoryBytes: inventory.devices.map((d) => d.memoryBytes),
    threadsPerDevice: inventory.threadsPerDevice,
    sgemmGflops: inventory.sgemmGflops,
    alive: true,
    heldBy: new Map(),
    updatedAt: Date.now(),
  };
}

interface PlanOutput {
  feasible: boolean;
  source: 'local' | 'server';
  device?: {
    node: string;
    kind: string;
    name: string;
    devices: number;
    memoryBytes: number;
    peakFlops: number;
  };
  plan: PlanView | null;
  maxSeqLen: number | null;
  suggestion: string | null;
  errors: { path: string; reason: string }[];
}

/** This machine's devices, or (--device) the spec's number of a datasheet GPU. */
async function inventoryToPlanFor(args: Args, devices: number): Promise<NodeInventory> {
  const gpu = args.string('device');
  if (gpu !== undefined) {
    const profile = GPU_PROFILES[gpu];
    if (!profile)
      throw new UsageError(`--device: '${gpu}' is not a known GPU (${Object.keys(GPU_PROFILES).join(', ')})`);
    return {
      node: gpu,
      hostname: gpu,
      kind: 'cuda',
      devices: Array.from({ length: devices }, (_, index) => ({
        index,
        name: gpu,
        memoryBytes: profile.memoryBytes,
      })),
      threadsPerDevice: 1,
    };
  }
  const nodeFilePath = args.string('node-file');
  const nodeFile = nodeFilePath ? loadNodeFile(nodeFilePath) : undefined;
  const given = args.number('sgemm-gflops', Number.MIN_VALUE);
  return detectInventory({
    nodeFile: given !== undefined ? { ...nodeFile, sgemm_gflops: given } : nodeFile,
    nvidiaSmi: args.has('no-gpu') ? false : undefined,
  });
}

async function planLocally(args: Args, io: CliIo, spec: { yaml: string; path: string }): Promise<PlanOutput> {
  const parsed = parseSpec(spec.yaml, spec.path);
  if (!parsed.ok)
    return {
      feasible: false,
      source: 'local',
      plan: null,
      maxSeqLen: null,
      suggestion: null,
      errors: parsed.errors,
    };
  const inventory = await inventoryToPlanFor(args, parsed.spec.devices);
  if (inventory.kind === 'cpu' && inventory.sgemmGflops === undefined) {
    if (!existsSync(addonPath))
      throw new CliError(
        ExitCode.FAILURE,
        `cannot time this machine's CPU devices: the native addon is not built (${addonPath}); run 'make build', or give --sgemm-gflops N`,
      );
    inventory.sgemmGflops = await nativeSgemmRate()(inventory.threadsPerDevice);
  }
  const target = planningDevice([asNodeStatus(inventory)], parsed.spec.devices);
  if (!target) throw new CliError(ExitCode.FAILURE, 'this machine has no devices to plan for');
  const device = {
    node: inventory.node,
    kind: target.device.kind,
    name: target.device.name,
    devices: inventory.devices.length,
    memoryBytes: target.device.memoryBytes,
    peakFlops: target.device.peakFlops,
  };
  const errors: PlanOutput['errors'] = [];
  if (parsed.spec.devices > target.largest)
    errors.push({
      path: 'devices',
      reason: `${parsed.spec.devices} requested but this machine has ${target.largest}`,
    });
  const plan = planJob(parsed.spec, target.device, target.largest);
  const longest = args.has('max-context')
    ? maxContext({ ...parsed.spec, activation_checkpointing: 'auto', offload: 'auto' }, target.device)
    : null;
  return {
    feasible: plan.feasible && errors.length === 0,
    source: 'local',
    device,
    plan: planViewFromResult(plan),
    maxSeqLen: longest,
    suggestion: plan.suggestion ?? null,
    errors,
  };
}

async function planRemotely(
  args: Args,
  io: CliIo,
  spec: { yaml: string; path: string },
): Promise<PlanOutput> {
  const r = await withClient(args, io, (client) =>
    client.planJob(spec.yaml, spec.path, args.has('max-context')),
  );
  return {
    feasible: r.feasible,
    source: 'server',
    plan: r.plan ? planViewFromProto(r.plan) : null,
    maxSeqLen: args.has('max-context') ? Number(r.maxSeqLen) : null,
    suggestion: r.suggestion || null,
    errors: r.errors.map((e) => ({ path: str(e.path), reason: str(e.reason) })),
  };
}

async function run(args: Args, io: CliIo): Promise<number> {
  const [specArg] = args.expect('spec');
  const local = ['node-file', 'sgemm-gflops', 'no-gpu', 'device'].filter((f) => args.has(f));
  if (args.has('remote') && local.length > 0)
    throw new UsageError(`--remote plans for the server's nodes: drop --${local.join(', --')}`);
  if (args.has('device') && local.length > 1)
    throw new UsageError(
      `--device plans for a datasheet GPU: drop --${local.filter((f) => f !== 'device').join(', --')}`,
    );
  const spec = await readSpec(specArg!, io.cwd);
  const steps = parseSpec(spec.yaml, spec.path);
  const out = args.has('remote') ? await planRemotely(args, io, spec) : await planLocally(args, io, spec);
  if (args.json) writeJson(io, out);
  else {
    const w = (line: string) => io.stdout.write(`${line}\n`);
    if (out.device)
      w(
        `${out.device.node}: ${out.device.devices} × ${out.device.name} (${formatBytes(out.device.memoryBytes)}, ${(out.device.peakFlops / 1e12).toFixed(3)} TFLOP/s peak each)`,
      );
    if (out.plan) {
      w(out.feasible ? 'fits' : 'does NOT fit');
      for (const line of renderPlan(out.plan, steps.ok ? steps.spec.steps : undefined)) w(`  ${line}`);
    }
    if (out.suggestion) w(`to fit: ${out.suggestion}`);
    if (out.maxSeqLen !== null)
      w(`max context: ${out.maxSeqLen} tokens (the longest seq_len that fits with auto policies)`);
  }
  if (out.errors.length > 0 && !out.plan)
    throw new CliError(
      ExitCode.REJECTED,
      `${spec.path} is not a valid job spec: fix the fields below`,
      fieldErrorLines(out.errors, spec.path),
    );
  if (!out.feasible)
    throw new CliError(
      ExitCode.REJECTED,
      `${spec.path} cannot run as written${out.suggestion ? '' : ': see the errors below'}`,
      fieldErrorLines(out.errors, spec.path),
    );
  return ExitCode.OK;
}

export const planCommand: Command = {
  name: 'plan',
  summary: 'predict memory, policy, shards and time for a spec (no server needed)',
  help: HELP,
  flags: {
    ...CONNECTION_FLAGS,
    json: 'boolean',
    'max-context': 'boolean',
    'node-file': 'string',
    'sgemm-gflops': 'string',
    'no-gpu': 'boolean',
    device: 'string',
    remote: 'boolean',
  },
  run,
};
