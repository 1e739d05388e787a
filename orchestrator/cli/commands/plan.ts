// `longctx plan SPEC`: what the planner predicts for a job on this machine's devices, without a
// server: per-rank memory by category, the policy it would choose, the zigzag shard map, step and
// total time, and with --max-context the longest context that fits. --remote asks the server
// instead, which plans for the nodes that registered with it (and checks the data file too). Both
// go through the same admission (orchestrator/plan/admission.ts).
import { existsSync } from 'node:fs';

import {
  detectInventory,
  loadNodeFile,
  nativeSgemmRate,
  type NodeInventory,
} from '../../../cluster/inventory.js';
import { addonPath } from '../../../worker-native/native.js';
import { GPU_PROFILES } from '../../plan/devices.js';
import type { NodeStatus } from '../../../control/store.js';
import { admit, describeNodes } from '../../plan/admission.js';
import { parseSpec } from '../../spec/validate.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, UsageError, type Args } from '../args.js';
import { withClient, writeJson, type CliIo, type Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { formatBytes, str } from '../format.js';
import type { PlanSummary } from '../../../core/reports.js';
import { planFromProto } from '../../../proto/convert.js';
import { planSummary } from '../../plan/planner.js';
import { renderPlan } from '../plan-view.js';
import { fieldErrorLines, readSpec } from './submit.js';

const HELP = `Usage: longctx plan SPEC [options]

Plans the job spec SPEC for this machine's devices (nvidia-smi's GPUs, or 8 emulated CPU devices
with the node file's budget), without a server: per-rank device memory by category, the
activation-checkpointing and offload policy chosen, the zigzag shard map, estimated step and total
time. Exit 5 when the spec is invalid or nothing fits (with the smallest change that would fit).
A spec that names GPUs (resources: {accelerators: H200:8}) is planned for those GPUs (datasheet
numbers) wherever it runs; when this machine lacks them, a line says so and the exit is 8.
Emulated CPU devices beyond this machine's cores share them: each is planned at cores / devices
of the measured sgemm rate. The data file is not checked here; 'submit' (and --remote) check it.

Options:
  --max-context            also find the longest seq_len that fits (auto policies)
  --node-file FILE         describe this node as the agent's --node-file does (devices, budget)
  --sgemm-gflops N         the sgemm rate of one CPU device's threads run alone, as the agent
                           measures it with the native addon when omitted
  --no-gpu                 plan for emulated CPU devices even where the node has GPUs
  --device NAME            plan for the spec's device count of this GPU instead of this machine's
                           devices (datasheet numbers): ${Object.keys(GPU_PROFILES).join(', ')}
  --remote                 ask the server to plan it for its registered nodes instead
  --json                   print {feasible, source, device, plan, maxSeqLen, suggestion,
                           missingDevices, errors}
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
    cores: inventory.cores,
    alive: true,
    heldBy: new Map(),
    updatedAt: Date.now(),
  };
}

interface PlanOutput {
  feasible: boolean;
  source: 'local' | 'server';
  device?: {
    /** The node planned for, or 'datasheet' when no node has the GPUs the spec names. */
    node: string;
    kind: string;
    name: string;
    devices: number;
    memoryBytes: number;
    peakFlops: number;
  };
  plan: PlanSummary | null;
  maxSeqLen: number | null;
  suggestion: string | null;
  /** The GPUs the spec names when this node (--remote: no node) has them; null otherwise. */
  missingDevices: { name: string; count: number; here: string } | null;
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

/** Admission (orchestrator/plan/admission.ts) for this machine alone, without the data check. */
async function planLocally(args: Args, spec: { yaml: string; path: string }): Promise<PlanOutput> {
  const parsed = parseSpec(spec.yaml, spec.path);
  const inventory = await inventoryToPlanFor(args, parsed.ok ? parsed.spec.devices : 1);
  // CPU devices are timed with the addon, unless the job names GPUs: then it is planned for those.
  if (
    inventory.kind === 'cpu' &&
    inventory.sgemmGflops === undefined &&
    parsed.ok &&
    !parsed.spec.resources
  ) {
    if (!existsSync(addonPath))
      throw new CliError(
        ExitCode.FAILURE,
        `cannot time this machine's CPU devices: the native addon is not built (${addonPath}); run 'make build', or give --sgemm-gflops N`,
      );
    inventory.sgemmGflops = await nativeSgemmRate()(inventory.threadsPerDevice);
  }
  const here = asNodeStatus(inventory);
  const verdict = await admit(spec.yaml, spec.path, [here], {
    checkData: false,
    maxContext: args.has('max-context'),
  });
  const { target, plan, missingAccelerators } = verdict;
  return {
    feasible: verdict.ok,
    source: 'local',
    ...(target
      ? {
          device: {
            node: target.node?.name ?? 'datasheet',
            kind: target.device.kind,
            name: target.device.name,
            devices: target.node?.devices ?? verdict.spec?.devices ?? 0,
            memoryBytes: target.device.memoryBytes,
            peakFlops: target.device.peakFlops,
          },
        }
      : {}),
    plan: plan ? planSummary(plan) : null,
    maxSeqLen: verdict.maxSeqLen ?? null,
    suggestion: plan?.suggestion ?? null,
    missingDevices: missingAccelerators
      ? {
          ...missingAccelerators,
          here: `${inventory.node} has ${describeNodes([here]).replace(/^[^:]*: /, '')}`,
        }
      : null,
    errors: verdict.errors,
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
    plan: r.plan ? planFromProto(r.plan) : null,
    maxSeqLen: args.has('max-context') ? Number(r.maxSeqLen) : null,
    suggestion: r.suggestion || null,
    missingDevices: null,
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
  const out = args.has('remote') ? await planRemotely(args, io, spec) : await planLocally(args, spec);
  // Only the GPUs are missing (locally, or on every node of the server): the plan itself fits.
  const onlyDevicesMissing =
    !out.feasible && out.errors.length > 0 && out.errors.every((e) => e.path === 'resources.accelerators');
  if (args.json) writeJson(io, out);
  else {
    const w = (line: string) => io.stdout.write(`${line}\n`);
    if (out.device)
      w(
        `${out.device.node}: ${out.device.devices} × ${out.device.name} (${formatBytes(out.device.memoryBytes)}, ${(out.device.peakFlops / 1e12).toFixed(3)} TFLOP/s peak each)`,
      );
    if (out.plan) {
      w(out.feasible || onlyDevicesMissing ? 'fits' : 'does NOT fit');
      for (const line of renderPlan(out.plan, steps.ok ? steps.spec.steps : undefined)) w(`  ${line}`);
    }
    if (out.suggestion) w(`to fit: ${out.suggestion}`);
    if (out.maxSeqLen !== null)
      w(`max context: ${out.maxSeqLen} tokens (the longest seq_len that fits with auto policies)`);
    if (out.missingDevices)
      w(
        `this node lacks the devices the spec names: it needs ${out.missingDevices.count} × ${out.missingDevices.name} and ${out.missingDevices.here} (the plan above is for the datasheet GPU; submit it to a server whose nodes have them)`,
      );
  }
  if (out.errors.length > 0 && !out.plan)
    throw new CliError(
      ExitCode.REJECTED,
      `${spec.path} is not a valid job spec: fix the fields below`,
      fieldErrorLines(out.errors, spec.path),
    );
  if (onlyDevicesMissing)
    throw new CliError(
      ExitCode.DEVICES_MISSING,
      `${spec.path} fits ${args.has('remote') ? 'the GPUs it names, but no node of the server has them' : "the GPUs it names, but this node doesn't have them"}`,
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
