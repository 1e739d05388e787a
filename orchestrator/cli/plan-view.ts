// One shape for a plan, whichever way it came (planned here by `plan`, or by the server in
// `plan --remote`, `submit` and `show`), and its rendering: the per-rank memory breakdown, the
// chosen policy, the zigzag shard map, step and total time.
import type { PlanResult } from '../plan/planner.js';
import { CATEGORIES, type Category } from '../plan/memory-model.js';
import type { longctx } from '../../proto/services.js';
import { formatBytes, formatDuration } from './format.js';

export interface PlanView {
  activationCheckpointing: string;
  offload: string;
  /** Predicted device bytes per rank at its peak, by category, and their sum. */
  perRank: Record<Category, number>;
  peakBytes: number;
  hostBytes: number;
  budgetBytes: number;
  stepSeconds: number;
  totalSeconds: number;
  modelFlopsPerStep: number;
  shards: { rank: number; chunks: number[]; starts: number[]; chunkTokens: number }[];
  notes: string[];
}

export function planViewFromResult(plan: Omit<PlanResult, 'candidates'>): PlanView {
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

export function planViewFromProto(plan: longctx.IPlan): PlanView {
  const b = plan.perRank ?? {};
  return {
    activationCheckpointing: plan.activationCheckpointing ?? '',
    offload: plan.offload ?? '',
    perRank: {
      weights: Number(b.weights ?? 0),
      gradients: Number(b.gradients ?? 0),
      optimizer: Number(b.optimizer ?? 0),
      activations: Number(b.activations ?? 0),
      ring_buffers: Number(b.ringBuffers ?? 0),
      cross_entropy: Number(b.crossEntropy ?? 0),
      workspace: Number(b.workspace ?? 0),
    },
    peakBytes: Number(b.total ?? 0),
    hostBytes: Number(b.host ?? 0),
    budgetBytes: Number(plan.deviceBudgetBytes ?? 0),
    stepSeconds: plan.stepSeconds ?? 0,
    totalSeconds: plan.totalSeconds ?? 0,
    modelFlopsPerStep: plan.modelFlopsPerStep ?? 0,
    shards: (plan.shards ?? []).map((s) => ({
      rank: s.rank ?? 0,
      chunks: (s.chunks ?? []).map(Number),
      starts: (s.tokenStart ?? []).map(Number),
      chunkTokens: Number(s.chunkTokens ?? 0),
    })),
    notes: [...(plan.notes ?? [])],
  };
}

/** The shard map as lines: which two chunks (and token ranges) each rank holds. */
export function renderShards(shards: PlanView['shards']): string[] {
  if (shards.length === 0) return [];
  const tokens = shards[0]!.chunkTokens;
  const lines = [
    `zigzag shards: ${2 * shards.length} chunks of ${tokens} tokens, rank r holds chunks r and ${2 * shards.length - 1}-r`,
  ];
  for (const s of shards) {
    const ranges = s.starts.map((start) => `[${start}, ${start + s.chunkTokens})`).join(' + ');
    lines.push(
      `  rank ${String(s.rank).padStart(2)}: chunks ${s.chunks.join(', ').padEnd(7)} tokens ${ranges}`,
    );
  }
  return lines;
}

export function renderPlan(plan: PlanView, steps?: number): string[] {
  const lines = [
    `policy: activation_checkpointing=${plan.activationCheckpointing}, offload=${plan.offload}`,
    `device memory per rank: ${formatBytes(plan.peakBytes)} predicted peak of ${formatBytes(plan.budgetBytes)} budget`,
  ];
  for (const c of CATEGORIES) lines.push(`  ${c.padEnd(14)} ${formatBytes(plan.perRank[c]).padStart(12)}`);
  if (plan.hostBytes > 0) lines.push(`host memory per rank (offload): ${formatBytes(plan.hostBytes)}`);
  lines.push(
    `time: ${formatDuration(plan.stepSeconds)} per step, ${formatDuration(plan.totalSeconds)} in all${steps !== undefined ? ` (${steps} steps)` : ''}; ${(plan.modelFlopsPerStep / 1e12).toFixed(3)} TFLOP per step`,
  );
  lines.push(...renderShards(plan.shards));
  for (const note of plan.notes) lines.push(`note: ${note}`);
  return lines;
}
