// A plan as the CLI prints it, whichever way it came (planned here by `plan`, or by the server in
// `plan --remote`, `submit` and `show`; both are a core/reports.ts PlanSummary): the per-rank
// memory breakdown, the chosen policy, the zigzag shard map, step and total time.
import { CATEGORIES, type PlanSummary } from '../../core/reports.js';
import { formatBytes, formatDuration } from './format.js';

/** The shard map as lines: which two chunks (and token ranges) each rank holds. */
export function renderShards(shards: PlanSummary['shards']): string[] {
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

export function renderPlan(plan: PlanSummary, steps?: number): string[] {
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
