// The planner: for a job spec and the device it will run on, predict per-rank memory and step
// time under each activation-checkpointing policy and offload mode, and choose. `auto` picks the
// fastest combination whose predicted peak fits the device budget with a safety margin; an
// explicit choice is checked. A spec that fits under no choice is rejected with the smallest
// change that would make it fit.
import type { JobSpec } from '../../core/job-spec.js';
import type { ActivationCheckpointing, Offload } from '../../core/policies.js';
import type { ModelConfig } from '../../core/model-config.js';
import type { PlanSummary } from '../../core/reports.js';
import { zigzagPlan, type ZigzagShard } from '../../core/zigzag.js';
import type { DeviceProfile } from './devices.js';
import { trainingFlopsPerStep } from './flops.js';
import { parameterLayout, predictMemory, type MemoryPrediction } from './memory-model.js';

/** Headroom kept free on every device: allocator slack, what the model does not count. */
export const SAFETY_MARGIN = 0.1;
/**
 * Fraction of the device's peak that a training step reaches. On CPU devices it was measured:
 * 0.55–0.59 of single-thread sgemm over whole steps of the `small` model (bench/RESULTS.md,
 * train). On GPUs it is an assumption until the CUDA trainer is measured.
 */
export const COMPUTE_EFFICIENCY = 0.5;

const POLICIES: ActivationCheckpointing[] = ['none', 'selective', 'every-2', 'full'];
const OFFLOADS: Offload[] = ['none', 'optimizer', 'params+optimizer'];

export interface Candidate {
  activationCheckpointing: ActivationCheckpointing;
  offload: Offload;
  memory: MemoryPrediction;
  stepSeconds: number;
  fits: boolean;
}

export interface PlanResult {
  feasible: boolean;
  activationCheckpointing: ActivationCheckpointing;
  offload: Offload;
  memory: MemoryPrediction;
  budgetBytes: number;
  usableBytes: number;
  stepSeconds: number;
  totalSeconds: number;
  flopsPerStep: number;
  shards: ZigzagShard[];
  candidates: Candidate[];
  notes: string[];
  /** The smallest change that would fit, when nothing does. */
  suggestion?: string;
}

/** Forward FLOPs the backward recomputes per sequence under a policy. */
function recomputeFlops(c: ModelConfig, seqLen: number, policy: ActivationCheckpointing): number {
  const layout = parameterLayout(c);
  const layerLinear = 2 * layout.perLayer * seqLen;
  const layerAttention = 2 * seqLen * seqLen * c.hidden_size;
  const L = c.num_hidden_layers;
  if (policy === 'none') return 0;
  if (policy === 'full') return L * (layerLinear + layerAttention);
  if (policy === 'selective') return L * layerLinear;
  const k = Number(policy.slice('every-'.length));
  const recomputed = L - Math.floor(L / k);
  return recomputed * (layerLinear + layerAttention);
}

export interface TimeInputs {
  config: ModelConfig;
  seqLen: number;
  devices: number;
  gradAccumulation: number;
  precision: JobSpec['precision'];
  activationCheckpointing: ActivationCheckpointing;
  offload: Offload;
}

/** Seconds of one optimizer step: compute, exposed ring traffic, gradient all-reduce, offload copies. */
export function estimateStepSeconds(t: TimeInputs, device: DeviceProfile): number {
  const c = t.config;
  const N = t.devices;
  const rate = device.peakFlops * COMPUTE_EFFICIENCY;
  const flops =
    trainingFlopsPerStep(c, t.seqLen, t.gradAccumulation) +
    t.gradAccumulation * recomputeFlops(c, t.seqLen, t.activationCheckpointing);
  const compute = flops / N / rate;
  const act = t.precision === 'bf16' ? 2 : 4;
  const P = parameterLayout(c).total;
  const T = t.seqLen / N;
  const kvBytes = 2 * T * c.num_key_value_heads * (c.hidden_size / c.num_attention_heads) * act;
  // Ring traffic per layer and micro-batch: N-1 K/V blocks forward, N-1 K/V and N dK/dV backward.
  // It overlaps the attention compute; only what exceeds it is exposed.
  const ringSeconds = N > 1 ? ((3 * N - 2) * kvBytes) / device.ringBytesPerSecond : 0;
  const attentionSeconds = (6 * t.seqLen * t.seqLen * c.hidden_size) / N / rate;
  const exposedRing = t.gradAccumulation * c.num_hidden_layers * Math.max(0, ringSeconds - attentionSeconds);
  // Gradient all-reduce and the ZeRO-1 parameter gather, both float32 over the ring.
  const collectives = N > 1 ? (2 * 2 * P * 4 * (N - 1)) / N / device.ringBytesPerSecond : 0;
  let offload = 0;
  if (t.offload === 'optimizer') offload = (4 * Math.ceil(P / N) * 4) / device.hostLinkBytesPerSecond;
  if (t.offload === 'params+optimizer') {
    const staged = t.activationCheckpointing === 'none' ? 2 : 3; // forward, backward (+ recompute)
    offload =
      (t.gradAccumulation * (staged * P * act + P * 4) + 4 * Math.ceil(P / N) * 4) /
      device.hostLinkBytesPerSecond;
  }
  return compute + exposedRing + collectives + offload;
}

function evaluate(
  spec: JobSpec,
  device: DeviceProfile,
  usable: number,
  ac: ActivationCheckpointing,
  offload: Offload,
  seqLen = spec.seq_len,
): Candidate {
  const memory = predictMemory({
    config: spec.model.config,
    seqLen,
    devices: spec.devices,
    precision: spec.precision,
    activationCheckpointing: ac,
    offload,
  });
  const stepSeconds = estimateStepSeconds(
    {
      config: spec.model.config,
      seqLen,
      devices: spec.devices,
      gradAccumulation: spec.grad_accumulation,
      precision: spec.precision,
      activationCheckpointing: ac,
      offload,
    },
    device,
  );
  return { activationCheckpointing: ac, offload, memory, stepSeconds, fits: memory.peak <= usable };
}

function choices(spec: JobSpec): [ActivationCheckpointing[], Offload[]] {
  return [
    spec.activation_checkpointing === 'auto' ? POLICIES : [spec.activation_checkpointing],
    spec.offload === 'auto' ? OFFLOADS : [spec.offload],
  ];
}

function best(candidates: Candidate[]): Candidate | undefined {
  return candidates.filter((c) => c.fits).sort((a, b) => a.stepSeconds - b.stepSeconds)[0];
}

export function budgetFor(spec: JobSpec, device: DeviceProfile): number {
  return spec.device_memory ?? device.memoryBytes;
}

/** The largest seq_len (a multiple of 2·devices) that fits under the spec's policy choices. */
export function maxContext(spec: JobSpec, device: DeviceProfile): number {
  const usable = budgetFor(spec, device) * (1 - SAFETY_MARGIN);
  const [acs, offloads] = choices(spec);
  const step = 2 * spec.devices;
  const fits = (seqLen: number) =>
    acs.some((ac) => offloads.some((o) => evaluate(spec, device, usable, ac, o, seqLen).fits));
  if (!fits(step)) return 0;
  let lo = 1;
  let hi = 2;
  while (fits(hi * step) && hi < 2 ** 24) hi *= 2;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid * step)) lo = mid;
    else hi = mid;
  }
  return lo * step;
}

const GiB = 2 ** 30;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(2)} GiB`;

export function planJob(spec: JobSpec, device: DeviceProfile, largestNodeDevices = spec.devices): PlanResult {
  const budget = budgetFor(spec, device);
  const usable = budget * (1 - SAFETY_MARGIN);
  const [acs, offloads] = choices(spec);
  const candidates = acs.flatMap((ac) => offloads.map((o) => evaluate(spec, device, usable, ac, o)));
  const chosen = best(candidates);
  const flopsPerStep = trainingFlopsPerStep(spec.model.config, spec.seq_len, spec.grad_accumulation);
  const shards = zigzagPlan(spec.seq_len, spec.devices);
  const notes: string[] = [];
  if (chosen) {
    notes.push(
      `chose activation_checkpointing=${chosen.activationCheckpointing}, offload=${chosen.offload}: ${gib(chosen.memory.peak)} of ${gib(usable)} usable per device`,
    );
    return {
      feasible: true,
      activationCheckpointing: chosen.activationCheckpointing,
      offload: chosen.offload,
      memory: chosen.memory,
      budgetBytes: budget,
      usableBytes: usable,
      stepSeconds: chosen.stepSeconds,
      totalSeconds: chosen.stepSeconds * spec.steps,
      flopsPerStep,
      shards,
      candidates,
      notes,
    };
  }
  // Nothing fits: find the smallest change, cheapest first — more devices, then a shorter context.
  const frugal = candidates.reduce((a, b) => (b.memory.peak < a.memory.peak ? b : a));
  const changes: string[] = [];
  for (let n = spec.devices + 1; n <= largestNodeDevices; n++) {
    if (spec.seq_len % (2 * n) !== 0) continue;
    const more = { ...spec, devices: n };
    if (acs.some((ac) => offloads.some((o) => evaluate(more, device, usable, ac, o).fits))) {
      changes.push(`devices: ${n}`);
      break;
    }
  }
  const longest = maxContext(spec, device);
  if (longest > 0) changes.push(`seq_len: ${longest} (the longest that fits on ${spec.devices} devices)`);
  if (spec.activation_checkpointing !== 'auto' || spec.offload !== 'auto')
    changes.push('activation_checkpointing: auto and offload: auto');
  const suggestion =
    `needs ${gib(frugal.memory.peak)} per device at best (activation_checkpointing=${frugal.activationCheckpointing}, offload=${frugal.offload}), ` +
    `but ${gib(usable)} is usable (${gib(budget)} less ${SAFETY_MARGIN * 100}% margin)` +
    (changes.length > 0
      ? `; to fit, set ${changes.join(', or ')}`
      : '; no change of devices or seq_len on this node makes it fit');
  return {
    feasible: false,
    activationCheckpointing: frugal.activationCheckpointing,
    offload: frugal.offload,
    memory: frugal.memory,
    budgetBytes: budget,
    usableBytes: usable,
    stepSeconds: frugal.stepSeconds,
    totalSeconds: frugal.stepSeconds * spec.steps,
    flopsPerStep,
    shards,
    candidates,
    notes,
    suggestion,
  };
}

/** What a plan says, in the shape every reader shares (core/reports.ts PlanSummary). */
export function planSummary(plan: Omit<PlanResult, 'candidates'>): PlanSummary {
  return {
    activationCheckpointing: plan.activationCheckpointing,
    offload: plan.offload,
    perRank: { ...plan.memory.breakdown },
    peakBytes: plan.memory.peak,
    hostBytes: plan.memory.host,
    budgetBytes: plan.budgetBytes,
    stepSeconds: plan.stepSeconds,
    totalSeconds: plan.totalSeconds,
    modelFlopsPerStep: plan.flopsPerStep,
    shards: plan.shards.map((s) => ({
      rank: s.rank,
      chunks: [...s.chunks],
      starts: [...s.starts],
      chunkTokens: s.chunkTokens,
    })),
    notes: [...plan.notes],
  };
}
