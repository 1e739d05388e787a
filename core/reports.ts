// What the processes tell each other about a job, in domain terms: a rank's step report (worker →
// server), the gang's step record and the workers' events (server → CLI and dashboard), and a plan
// as it is shown and sent. proto/convert.ts turns these into wire messages and back.

/** One rank's report of one optimizer step. Times in seconds, sizes in bytes. */
export interface RankStep {
  rank: number;
  step: number;
  loss: number;
  tokens: number;
  lr: number;
  gradNorm: number;
  stepSeconds: number;
  compute: number;
  commWait: number;
  data: number;
  optimizer: number;
  checkpoint: number;
  deviceBytesCurrent: number;
  deviceBytesPeak: number;
  hostBytes: number;
  bytesSent: number;
  timeMs: number;
}

export interface RankSummary {
  rank: number;
  compute: number;
  commWait: number;
  /** Step time not spent computing or waiting on communication: data, optimizer, checkpoint, overhead. */
  other: number;
  deviceBytesPeak: number;
  deviceBytesCurrent: number;
  straggler: boolean;
}

export interface StepSummary {
  step: number;
  loss: number;
  tokens: number;
  lr: number;
  gradNorm: number;
  /** The slowest rank's step time: the gang moves at its pace. */
  stepSeconds: number;
  tokensPerSecond: number;
  mfu: number;
  timeMs: number;
  ranks: RankSummary[];
  stragglers: number[];
}

export type WorkerEventKind = 'started' | 'checkpoint-saved' | 'resumed' | 'warning' | 'error' | 'finished';

export interface WorkerEventRecord {
  kind: WorkerEventKind;
  rank: number;
  attempt: number;
  step: number;
  message: string;
  timeMs: number;
  checkpoint?: { step: number; path: string; bytes: number; saveSeconds: number };
}

/** Device-memory categories of the planner's prediction and the trainer's arena. */
export type Category =
  'weights' | 'gradients' | 'optimizer' | 'activations' | 'ring_buffers' | 'cross_entropy' | 'workspace';

export const CATEGORIES: Category[] = [
  'weights',
  'gradients',
  'optimizer',
  'activations',
  'ring_buffers',
  'cross_entropy',
  'workspace',
];

/** One shape for a plan, whichever way it came (the planner here, or the server over gRPC). */
export interface PlanSummary {
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

/** One cell of a needle-in-a-haystack grid (eval/niah-score.ts's NiahCaseResult has these fields). */
export interface NiahCell {
  contextLength: number;
  depth: number;
  found: boolean;
  /** Answer tokens that were the strict argmax, of answerTokens. */
  answerCorrect: number;
  answerTokens: number;
}

/** A NIAH evaluation of one checkpoint of a job, as the server records it (one per step). */
export interface NiahEvaluation {
  step: number;
  /** The checkpoint folder evaluated (its eval-niah.json holds the full results). */
  checkpoint: string;
  contextLengths: number[];
  depths: number[];
  /** Row-major: cells[i * depths.length + j] is context length i at depth j. Empty on error. */
  cells: NiahCell[];
  /** Found cases / all cases. */
  accuracy: number;
  ropeTheta: number | null;
  seconds: number;
  timeMs: number;
  /** Why the evaluation failed (then cells is empty). */
  error?: string;
}
