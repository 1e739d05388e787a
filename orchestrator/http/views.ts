// What the dashboard's JSON API returns: one row per job for the jobs table (the queue's record
// joined with the job's telemetry progress), and a job's detail (plan, step series, the latest
// per-rank split, state changes, worker events). These types are the contract between the HTTP
// side and orchestrator/dashboard/, which imports them as types only.
import type { PlanResult } from '../plan/planner.js';
import type { JobEvent } from '../../control/events.js';
import { placementName, type JobRecord, type JobState } from '../../control/job-record.js';
import type { JobProgress, WorkerEventRecord } from '../../control/telemetry-history.js';
import type { StepSummary } from '../telemetry/step-aggregator.js';

/** What a job keeps of its plan: everything but the candidates that were not chosen. */
export type JobPlan = Omit<PlanResult, 'candidates'>;

export interface JobRow {
  id: string;
  name: string;
  state: JobState;
  node: string;
  devices: number;
  priority: number;
  attempt: number;
  restarts: number;
  maxRestarts: number;
  /** The last complete step; 0 before the first. */
  step: number;
  totalSteps: number;
  /** Telemetry of the last complete step; null before the first. */
  loss: number | null;
  tokensPerSecond: number | null;
  mfu: number | null;
  stepSeconds: number | null;
  /** Seconds left at the last step's pace; null when unknown or the job has ended. */
  etaSeconds: number | null;
  submittedAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  updatedAtMs: number;
  message: string;
}

/** Step telemetry as parallel arrays (compact for long runs): index i is one step. */
export interface StepSeries {
  step: number[];
  loss: number[];
  tokensPerSecond: number[];
  mfu: number[];
  stepSeconds: number[];
  timeMs: number[];
}

export interface JobDetail {
  job: JobRow;
  spec: {
    model: string;
    seqLen: number;
    devices: number;
    gradAccumulation: number;
    precision: string;
    checkpointEvery: number;
    /** The checkpoint steps the spec's eval: niah evaluates (none without one). */
    niahSteps: number[];
    specYaml: string;
  };
  /** The plan the job was accepted with (plan-store.ts); null when unknown. */
  plan: JobPlan | null;
  series: StepSeries;
  /** The newest step with its per-rank split; null before the first step. */
  latest: StepSummary | null;
  /** Per rank, the highest device peak reported by any step of the current attempt. */
  rankPeakBytes: number[];
  /** State changes, oldest first. */
  events: JobEvent[];
  /** What the workers said: checkpoints, resumes, warnings, errors (one 'started' per attempt). */
  workerEvents: WorkerEventRecord[];
}

export function emptySeries(): StepSeries {
  return { step: [], loss: [], tokensPerSecond: [], mfu: [], stepSeconds: [], timeMs: [] };
}

/**
 * Adds a step to the series. After a restart the job resumes from its last checkpoint and reports
 * steps it had reported before: the new ones replace the old from that step on, so the series stays
 * ordered by step (what a chart's x axis needs) and shows the run that counts.
 */
export function addStep(series: StepSeries, s: StepSummary): void {
  let keep = series.step.length;
  while (keep > 0 && series.step[keep - 1]! >= s.step) keep--;
  if (keep < series.step.length) {
    for (const values of Object.values(series) as number[][]) values.length = keep;
  }
  series.step.push(s.step);
  series.loss.push(s.loss);
  series.tokensPerSecond.push(s.tokensPerSecond);
  series.mfu.push(s.mfu);
  series.stepSeconds.push(s.stepSeconds);
  series.timeMs.push(s.timeMs);
}

const ACTIVE: readonly JobState[] = ['PLACED', 'RUNNING', 'RECOVERING', 'QUEUED'];

export function jobRow(
  record: JobRecord,
  progress: JobProgress | undefined,
  last: StepSummary | undefined,
): JobRow {
  const step = progress?.step ?? 0;
  const stepSeconds = last?.stepSeconds ?? null;
  const remaining = Math.max(0, record.spec.steps - step);
  const eta =
    ACTIVE.includes(record.state) && stepSeconds !== null && stepSeconds > 0 ? remaining * stepSeconds : null;
  return {
    id: record.id,
    name: record.name,
    state: record.state,
    node: placementName(record),
    devices: record.devices,
    priority: record.priority,
    attempt: record.attempt,
    restarts: record.restarts,
    maxRestarts: record.maxRestarts,
    step,
    totalSteps: record.spec.steps,
    loss: progress ? progress.loss : null,
    tokensPerSecond: progress ? progress.tokensPerSecond : null,
    mfu: progress ? progress.mfu : null,
    stepSeconds,
    etaSeconds: eta,
    submittedAtMs: record.submittedAt,
    startedAtMs: record.startedAt ?? null,
    finishedAtMs: record.finishedAt ?? null,
    updatedAtMs: record.updatedAt,
    message: record.message,
  };
}

/**
 * Worker events worth a place on the timeline. Every rank reports starting, resuming, saving its
 * part of a checkpoint and finishing, all at the same step, so rank 0 speaks for the gang there;
 * warnings and errors are kept from every rank.
 */
export function timelineEvents(events: WorkerEventRecord[]): WorkerEventRecord[] {
  return events.filter((e) => e.rank === 0 || e.kind === 'warning' || e.kind === 'error');
}

/** Highest device peak per rank over the given steps (a rank absent from every step reads 0). */
export function rankPeaks(steps: StepSummary[], worldSize: number): number[] {
  const peaks = new Array<number>(worldSize).fill(0);
  for (const s of steps) {
    for (const r of s.ranks) {
      if (r.rank < worldSize) peaks[r.rank] = Math.max(peaks[r.rank]!, r.deviceBytesPeak);
    }
  }
  return peaks;
}
