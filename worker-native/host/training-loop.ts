// The training loop one rank runs: micro-batches of its zigzag shard with gradient accumulation,
// the optimizer step, the learning-rate schedule, periodic asynchronous checkpoints, and a report
// per step. Every rank runs the same loop in lockstep (the trainer's collectives keep them so).
import type { TokenFile } from '../token-file.js';
import type { Trainer, TrainerState } from '../trainer.js';
import { saveCheckpoint, type SaveContext, type SavedCheckpoint, type RunState } from './checkpoint-io.js';
import { learningRate, type Schedule } from './schedule.js';

/** What one optimizer step did, as the worker reports it (loss and tokens are global). */
export interface StepRecord {
  step: number;
  loss: number;
  tokens: number;
  lr: number;
  gradNorm: number;
  stepSeconds: number;
  phases: { compute: number; commWait: number; data: number; optimizer: number; checkpoint: number };
  deviceBytesCurrent: number;
  deviceBytesPeak: number;
  hostBytes: number;
  bytesSent: number;
}

export interface LoopOptions {
  trainer: Trainer;
  data: TokenFile;
  seqLen: number;
  gradAccumulation: number;
  schedule: Schedule;
  checkpointEvery: number;
  save: SaveContext;
  /** Where training stands: fresh (step 0) or from a checkpoint. */
  state: RunState;
  /** Stop (with a checkpoint) after this step, before totalSteps: planned preemption. */
  stopAfterStep?: number;
  onStep(record: StepRecord): void;
  onCheckpoint(saved: SavedCheckpoint): void;
}

const now = () => performance.now() / 1000;

export async function runTrainingLoop(o: LoopOptions): Promise<RunState> {
  const { trainer, data, save } = o;
  let state: RunState = { ...o.state };
  let pending: Promise<SavedCheckpoint | undefined> | undefined;
  // The snapshot of a save is copied on a worker thread while the next micro-batch runs; only the
  // optimizer step must wait for it (it changes what is being copied).
  let copying: Promise<TrainerState> | undefined;
  // The arrays of the last save's snapshot: once that save is done, the next snapshot copies into
  // them (hundreds of MB for a real model) instead of allocating and first-touching fresh memory.
  let lastSnapshot: TrainerState | undefined;
  const last = Math.min(o.schedule.totalSteps, o.stopAfterStep ?? Infinity);

  for (let step = state.step + 1; step <= last; step++) {
    const started = now();
    trainer.resetPeak();
    const phases = { compute: 0, commWait: 0, data: 0, optimizer: 0, checkpoint: 0 };
    let lossSum = 0;
    let tokens = 0;
    let bytesSent = 0;
    let cursor = state.sequenceCursor;
    for (let micro = 0; micro < o.gradAccumulation; micro++) {
      const t = now();
      const shard = data.readShard(cursor, o.seqLen, save.rank, save.world);
      phases.data += now() - t;
      const r = await trainer.accumulate(shard.inputIds, shard.positions, shard.labels, o.gradAccumulation);
      cursor++;
      lossSum += r.globalLossSum;
      tokens += r.globalTokens;
      phases.compute += r.computeSeconds;
      phases.commWait += r.commWaitSeconds;
      bytesSent += r.bytesSent;
    }
    if (copying) {
      const t = now();
      await copying;
      copying = undefined;
      phases.checkpoint += now() - t;
    }
    const lr = learningRate(o.schedule, step);
    const s = await trainer.step(lr);
    phases.optimizer += s.optimizerSeconds;
    phases.commWait += s.commWaitSeconds;
    const loss = tokens > 0 ? lossSum / tokens : 0;
    // A new object every step: a save still writing an earlier state keeps that state intact.
    state = {
      ...state,
      step,
      adamStep: s.adamStep,
      sequenceCursor: cursor,
      tokensSeen: state.tokensSeen + tokens,
      lastLoss: loss,
    };

    if (step % o.checkpointEvery === 0 || step === last) {
      const t = now();
      // One save in flight at a time. Waiting for it here and for the snapshot's copy before the
      // next step are the only stalls an async save causes (beyond sharing the machine).
      if (pending) await pending;
      const saving = state;
      copying = trainer.startSnapshot(lastSnapshot);
      pending = copying
        .then((snapshot) => {
          lastSnapshot = snapshot;
          return saveCheckpoint(save, snapshot, saving, { background: true });
        })
        .then((saved) => {
          if (saved) o.onCheckpoint(saved);
          return saved;
        });
      // Surface a failure at the next await instead of as an unhandled rejection.
      copying.catch(() => {});
      pending.catch(() => {});
      phases.checkpoint += now() - t;
    }
    const memory = trainer.memory();
    o.onStep({
      step,
      loss,
      tokens,
      lr,
      gradNorm: s.gradNorm,
      stepSeconds: now() - started,
      phases,
      deviceBytesCurrent: memory.deviceCurrent,
      deviceBytesPeak: memory.devicePeak,
      hostBytes: memory.hostCurrent,
      bytesSent,
    });
  }
  if (pending) await pending;
  return state;
}
