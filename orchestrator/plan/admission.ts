// Admission: the one path from a spec's YAML to a job the cluster can run, used by `submit`, by
// `plan` (locally for this machine, remotely for the server's nodes) and, for its device rule, by
// the MFU figure. In order: parse and validate the spec, check its data file, choose the device to
// plan for among the nodes, plan, and check that the plan fits. Every problem is a field error;
// `auto` policies come back resolved, so workers receive a concrete plan.
import { nodeHasAccelerators, type AcceleratorRequest } from '../../core/devices.js';
import type { FieldError, JobSpec } from '../../core/job-spec.js';
import type { NodeStatus } from '../../control/store.js';
import { checkDataFile } from '../../data/validate.js';
import { parseSpec } from '../spec/validate.js';
import { cpuProfile, emulatedDeviceGflops, gpuProfileFor, type DeviceProfile } from './devices.js';
import { maxContext, planJob, type PlanResult } from './planner.js';

/**
 * A CPU node that did not measure its sgemm rate (its agent ran with measuring off) is planned
 * at this rate: about a third of one modern core's single-thread sgemm, so step-time estimates
 * err long. Agents measure by default (`longctx server`, `agent-main --measure-sgemm`).
 */
export const UNMEASURED_CPU_GFLOPS = 50;

/**
 * What the planner (and the MFU figure) takes one device of a node to be: a known GPU's datasheet
 * numbers, or an emulated CPU device at its real share of the node's cores.
 */
export function nodeDeviceProfile(node: NodeStatus): DeviceProfile {
  const memory = Math.min(...node.deviceMemoryBytes);
  const gflops = node.sgemmGflops ?? UNMEASURED_CPU_GFLOPS;
  if (node.kind === 'cuda')
    return gpuProfileFor(node.deviceNames[0] ?? '', memory) ?? cpuProfile(memory, gflops);
  return cpuProfile(memory, emulatedDeviceGflops(gflops, node.devices, node.cores));
}

export interface PlanningTarget {
  device: DeviceProfile;
  /** The node planned for; undefined when no node has the accelerators the spec names. */
  node?: NodeStatus;
  /** The most devices the job could have on one eligible node (for "set devices: N" advice). */
  largest: number;
  /**
   * The most devices a gang split across nodes could have: the devices of every node of the
   * planned node's kind (a gang bigger than every node runs across several; see control/scheduler.ts).
   */
  spanning: number;
}

/**
 * The device a job is planned for: among live nodes (all known ones when none is live) that could
 * hold it, the most constrained one. A job that names accelerators is planned for those GPUs,
 * from their datasheet when no node has them. Undefined when there is no node at all.
 */
export function planningTarget(
  nodes: NodeStatus[],
  spec: Pick<JobSpec, 'devices' | 'resources'>,
): PlanningTarget | undefined {
  const alive = nodes.filter((n) => n.alive);
  const pool = alive.length > 0 ? alive : nodes;
  const wanted = spec.resources?.accelerators;
  if (wanted) {
    const holders = pool.filter((n) => nodeHasAccelerators(n, wanted));
    // Accelerators are a count per node: such a gang is never split.
    if (holders.length === 0)
      return { device: gpuProfileFor(wanted.name)!, largest: wanted.count, spanning: wanted.count };
    const node = mostConstrained(holders);
    const largest = Math.max(...holders.map((n) => n.devices));
    return { device: nodeDeviceProfile(node), node, largest, spanning: largest };
  }
  if (pool.length === 0) return undefined;
  const eligible = pool.filter((n) => n.devices >= spec.devices);
  // A gang that no node can hold is planned for the most constrained device it could run on.
  const node = mostConstrained(eligible.length > 0 ? eligible : pool);
  const spanning = pool.filter((n) => n.kind === node.kind).reduce((sum, n) => sum + n.devices, 0);
  return {
    device: nodeDeviceProfile(node),
    node,
    largest: Math.max(...pool.map((n) => n.devices)),
    spanning,
  };
}

function mostConstrained(nodes: NodeStatus[]): NodeStatus {
  return nodes.reduce((a, b) =>
    Math.min(...b.deviceMemoryBytes) < Math.min(...a.deviceMemoryBytes) ? b : a,
  );
}

/** "mybox: 8 emulated CPU devices; gpu-1: 4 × NVIDIA H100 80GB HBM3" */
export function describeNodes(nodes: NodeStatus[]): string {
  return nodes
    .map((n) =>
      n.kind === 'cpu'
        ? `${n.name}: ${n.devices} emulated CPU devices`
        : `${n.name}: ${n.devices} × ${n.deviceNames[0] ?? 'GPU'}`,
    )
    .join('; ');
}

export function describeAccelerators(wanted: AcceleratorRequest): string {
  return `${wanted.count} × ${wanted.name}`;
}

export interface AdmissionOptions {
  /** Check the data file (submit and the server's plan do; a local plan does not). */
  checkData: boolean;
  /** Also find the longest seq_len that fits (auto policies). */
  maxContext?: boolean;
}

export interface Admission {
  /** True when the job may be queued: valid, its data usable, a node can hold it, the plan fits. */
  ok: boolean;
  errors: FieldError[];
  /** The spec, with `auto` policies resolved when the plan fits; absent when it did not parse. */
  spec?: JobSpec;
  target?: PlanningTarget;
  plan?: PlanResult;
  maxSeqLen?: number;
  /** The accelerators the spec names when no node has them (the plan is for their datasheet). */
  missingAccelerators?: AcceleratorRequest;
}

/** parse → validate the data → choose the planning device → plan → fit. */
export async function admit(
  specYaml: string,
  specPath: string,
  nodes: NodeStatus[],
  options: AdmissionOptions,
): Promise<Admission> {
  const parsed = parseSpec(specYaml, specPath || '<spec>');
  if (!parsed.ok) return { ok: false, errors: parsed.errors };
  const spec = parsed.spec;
  const errors: FieldError[] = [];
  if (options.checkData) {
    const data = await checkDataFile(spec.data.path, {
      seqLen: spec.seq_len,
      sequencesNeeded: spec.steps * spec.grad_accumulation,
      modelVocabSize: spec.model.config.vocab_size,
    });
    if (!data.ok) errors.push({ path: 'data.path', reason: data.error });
  }
  const target = planningTarget(nodes, spec);
  if (!target) {
    errors.push({ path: 'devices', reason: `${spec.devices} requested but no node agent has registered` });
    return { ok: false, errors, spec };
  }
  const wanted = spec.resources?.accelerators;
  let missingAccelerators: AcceleratorRequest | undefined;
  if (wanted && !target.node) {
    missingAccelerators = wanted;
    errors.push({
      path: 'resources.accelerators',
      reason: `${describeAccelerators(wanted)} on one node needed, but no node has them (${describeNodes(nodes) || 'no node agent has registered'})`,
    });
  } else if (spec.devices > target.largest && (wanted || spec.devices > target.spanning)) {
    errors.push({
      path: 'devices',
      reason: wanted
        ? `${spec.devices} requested but the largest node has ${target.largest}`
        : `${spec.devices} requested but the largest node has ${target.largest} and all nodes together ${target.spanning}`,
    });
  }
  const plan = planJob(spec, target.device, target.largest);
  if (!plan.feasible)
    errors.push({ path: 'seq_len', reason: `does not fit in device memory: ${plan.suggestion ?? ''}` });
  const maxSeqLen = options.maxContext
    ? maxContext({ ...spec, activation_checkpointing: 'auto', offload: 'auto' }, target.device)
    : undefined;
  const resolved: JobSpec = plan.feasible
    ? { ...spec, activation_checkpointing: plan.activationCheckpointing, offload: plan.offload }
    : spec;
  return {
    ok: errors.length === 0,
    errors,
    spec: resolved,
    target,
    plan,
    ...(maxSeqLen !== undefined ? { maxSeqLen } : {}),
    ...(missingAccelerators ? { missingAccelerators } : {}),
  };
}
