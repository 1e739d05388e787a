// Turns the per-rank step reports of one attempt into one record per step: the loss and tokens
// every rank agrees on, the step time of the slowest rank, tokens/s and MFU, and the per-rank
// split of time into compute, communication wait and the rest, with stragglers flagged.
import type { RankStep, RankSummary, StepSummary } from '../../core/reports.js';
import { mfu } from '../plan/flops.js';

export type { RankStep, RankSummary, StepSummary };

export interface AggregatorOptions {
  worldSize: number;
  /** Model FLOPs of one optimizer step (orchestrator/plan/flops.ts). */
  flopsPerStep: number;
  peakFlopsPerDevice: number;
  /** A rank whose compute time stays above this multiple of the median is a straggler. */
  stragglerRatio?: number;
  /** …over this many consecutive steps. */
  stragglerSteps?: number;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export class StepAggregator {
  private readonly pending = new Map<number, Map<number, RankStep>>();
  /** Consecutive steps each rank has been slow. */
  private readonly slowStreak = new Map<number, number>();
  private readonly ratio: number;
  private readonly streak: number;

  constructor(private readonly options: AggregatorOptions) {
    this.ratio = options.stragglerRatio ?? 1.25;
    this.streak = options.stragglerSteps ?? 3;
  }

  /** Adds one rank's report; returns the step's summary once every rank has reported it. */
  add(report: RankStep): StepSummary | undefined {
    let reports = this.pending.get(report.step);
    if (!reports) this.pending.set(report.step, (reports = new Map<number, RankStep>()));
    reports.set(report.rank, report);
    if (reports.size < this.options.worldSize) return undefined;
    this.pending.delete(report.step);
    // Steps are reported in order by every rank: anything older can no longer complete.
    for (const step of this.pending.keys()) if (step < report.step) this.pending.delete(step);
    return this.summarise([...reports.values()].sort((a, b) => a.rank - b.rank));
  }

  private summarise(reports: RankStep[]): StepSummary {
    const first = reports[0]!;
    const stepSeconds = Math.max(...reports.map((r) => r.stepSeconds));
    const typical = median(reports.map((r) => r.compute));
    const stragglers: number[] = [];
    const ranks = reports.map((r): RankSummary => {
      const slow = typical > 0 && r.compute > this.ratio * typical;
      const streak = slow ? (this.slowStreak.get(r.rank) ?? 0) + 1 : 0;
      this.slowStreak.set(r.rank, streak);
      const straggler = streak >= this.streak;
      if (straggler) stragglers.push(r.rank);
      return {
        rank: r.rank,
        compute: r.compute,
        commWait: r.commWait,
        other: Math.max(0, r.stepSeconds - r.compute - r.commWait),
        deviceBytesPeak: r.deviceBytesPeak,
        deviceBytesCurrent: r.deviceBytesCurrent,
        straggler,
      };
    });
    return {
      step: first.step,
      loss: first.loss,
      tokens: first.tokens,
      lr: first.lr,
      gradNorm: first.gradNorm,
      stepSeconds,
      tokensPerSecond: stepSeconds > 0 ? first.tokens / stepSeconds : 0,
      mfu: mfu(
        this.options.flopsPerStep,
        stepSeconds,
        this.options.worldSize,
        this.options.peakFlopsPerDevice,
      ),
      timeMs: Math.max(...reports.map((r) => r.timeMs)),
      ranks,
      stragglers,
    };
  }
}
