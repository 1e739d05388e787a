// Every conversion between the wire messages (longctx.proto) and the domain types they carry
// (core/reports.ts): the worker's step reports and events, the gang's step records, plans. The
// gRPC services and clients call these and hold no field mapping of their own. Numbers arrive as
// number | Long | undefined from protobufjs (--force-number makes them numbers); absent is zero.
import type {
  PlanSummary,
  RankStep,
  StepSummary,
  WorkerEventKind,
  WorkerEventRecord,
} from '../core/reports.js';
import { longctx } from './services.js';

const Kind = longctx.WorkerEvent.Kind;

const EVENT_KINDS: [longctx.WorkerEvent.Kind, WorkerEventKind][] = [
  [Kind.KIND_STARTED, 'started'],
  [Kind.KIND_CHECKPOINT_SAVED, 'checkpoint-saved'],
  [Kind.KIND_RESUMED, 'resumed'],
  [Kind.KIND_WARNING, 'warning'],
  [Kind.KIND_ERROR, 'error'],
  [Kind.KIND_FINISHED, 'finished'],
];

export function workerEventKindToProto(kind: WorkerEventKind): longctx.WorkerEvent.Kind {
  return EVENT_KINDS.find(([, k]) => k === kind)?.[0] ?? Kind.KIND_UNSPECIFIED;
}

/** An unknown or unset kind reads as a warning: the message is kept either way. */
export function workerEventKindFromProto(kind: number | null | undefined): WorkerEventKind {
  return EVENT_KINDS.find(([k]) => Number(k) === Number(kind))?.[1] ?? 'warning';
}

/** A rank's step as the worker sends it (job id and rank are the stream's). */
export function rankStepToProto(s: Omit<RankStep, 'rank'>): Omit<longctx.IStepReport, 'jobId' | 'rank'> {
  return {
    step: s.step,
    loss: s.loss,
    tokens: s.tokens,
    lr: s.lr,
    gradNorm: s.gradNorm,
    stepSeconds: s.stepSeconds,
    phases: {
      compute: s.compute,
      commWait: s.commWait,
      data: s.data,
      optimizer: s.optimizer,
      checkpoint: s.checkpoint,
    },
    deviceBytesCurrent: s.deviceBytesCurrent,
    deviceBytesPeak: s.deviceBytesPeak,
    hostBytes: s.hostBytes,
    bytesSent: s.bytesSent,
    timeMs: s.timeMs,
  };
}

/** A rank's step as the server receives it; `rank` is the registered one, not the message's. */
export function rankStepFromProto(s: longctx.IStepReport, rank: number, nowMs = Date.now()): RankStep {
  const phases = s.phases ?? {};
  return {
    rank,
    step: Number(s.step),
    loss: Number(s.loss ?? 0),
    tokens: Number(s.tokens),
    lr: Number(s.lr ?? 0),
    gradNorm: Number(s.gradNorm ?? 0),
    stepSeconds: Number(s.stepSeconds ?? 0),
    compute: Number(phases.compute ?? 0),
    commWait: Number(phases.commWait ?? 0),
    data: Number(phases.data ?? 0),
    optimizer: Number(phases.optimizer ?? 0),
    checkpoint: Number(phases.checkpoint ?? 0),
    deviceBytesCurrent: Number(s.deviceBytesCurrent),
    deviceBytesPeak: Number(s.deviceBytesPeak),
    hostBytes: Number(s.hostBytes),
    bytesSent: Number(s.bytesSent),
    timeMs: Number(s.timeMs) || nowMs,
  };
}

/** The gang's step as GetJob and WatchJob send it: phases are the ranks' means. */
export function stepSummaryToProto(jobId: string, s: StepSummary): longctx.IStepReport {
  const mean = (f: (r: StepSummary['ranks'][number]) => number) =>
    s.ranks.reduce((a, r) => a + f(r), 0) / Math.max(1, s.ranks.length);
  return {
    jobId,
    step: s.step,
    loss: s.loss,
    tokens: s.tokens,
    lr: s.lr,
    gradNorm: s.gradNorm,
    stepSeconds: s.stepSeconds,
    phases: { compute: mean((r) => r.compute), commWait: mean((r) => r.commWait) },
    deviceBytesPeak: Math.max(0, ...s.ranks.map((r) => r.deviceBytesPeak)),
    timeMs: s.timeMs,
  };
}

/** A worker event as the server keeps it; rank and attempt are the registered stream's. */
export function workerEventFromProto(
  e: longctx.IWorkerEvent,
  rank: number,
  attempt: number,
  nowMs = Date.now(),
): WorkerEventRecord {
  const c = e.checkpoint;
  return {
    kind: workerEventKindFromProto(e.kind),
    rank,
    attempt,
    step: Number(e.step),
    message: e.message ?? '',
    timeMs: Number(e.timeMs) || nowMs,
    ...(c
      ? {
          checkpoint: {
            step: Number(c.step),
            path: c.path ?? '',
            bytes: Number(c.bytes),
            saveSeconds: Number(c.saveSeconds ?? 0),
          },
        }
      : {}),
  };
}

/** A worker event as the worker sends it and as GetJob and WatchJob send it on. */
export function workerEventToProto(
  jobId: string,
  e: Omit<WorkerEventRecord, 'attempt'>,
): longctx.IWorkerEvent {
  return {
    kind: workerEventKindToProto(e.kind),
    jobId,
    rank: e.rank,
    step: e.step,
    message: e.message,
    timeMs: e.timeMs,
    ...(e.checkpoint
      ? {
          checkpoint: {
            step: e.checkpoint.step,
            path: e.checkpoint.path,
            bytes: e.checkpoint.bytes,
            saveSeconds: e.checkpoint.saveSeconds,
            valid: true,
          },
        }
      : {}),
  };
}

export function planToProto(plan: PlanSummary): longctx.IPlan {
  const b = plan.perRank;
  return {
    activationCheckpointing: plan.activationCheckpointing,
    offload: plan.offload,
    perRank: {
      weights: b.weights,
      gradients: b.gradients,
      optimizer: b.optimizer,
      activations: b.activations,
      ringBuffers: b.ring_buffers,
      crossEntropy: b.cross_entropy,
      workspace: b.workspace,
      total: plan.peakBytes,
      host: plan.hostBytes,
    },
    deviceBudgetBytes: plan.budgetBytes,
    stepSeconds: plan.stepSeconds,
    totalSeconds: plan.totalSeconds,
    modelFlopsPerStep: plan.modelFlopsPerStep,
    shards: plan.shards.map((s) => ({
      rank: s.rank,
      chunks: s.chunks,
      tokenStart: s.starts,
      chunkTokens: s.chunkTokens,
    })),
    notes: plan.notes,
  };
}

/** A plan as the server sent it (plan --remote, submit, show). */
export function planFromProto(plan: longctx.IPlan): PlanSummary {
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
