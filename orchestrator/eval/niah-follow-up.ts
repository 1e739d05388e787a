// The `eval: {niah: ...}` section of a job spec, carried out: when a job's rank 0 reports a saved
// checkpoint at one of the chosen steps, the server evaluates that checkpoint on `devices` CPU
// ranks of its own machine (eval/niah-run.ts: the zigzag ring, as training shards, so a context
// too long for one device is split), writes eval-niah.json into the checkpoint folder and records
// the results in Redis, where the dashboard and /metrics read them. A follow-up step rather than
// work on the job's ranks: the job trains on while its checkpoint is evaluated, a failed evaluation
// costs the job nothing, and the same code evaluates a checkpoint with another RoPE base.
// Evaluations run one at a time, in the order the checkpoints arrive.
import type { Redis } from 'ioredis';

import type { JobQueue } from '../../control/job-queue.js';
import type { TelemetryHistory, TelemetryUpdate } from '../../control/telemetry-history.js';
import type { NiahEvalSpec } from '../../core/job-spec.js';
import type { NiahEvaluation } from '../../core/reports.js';
import { openTokenizer } from '../../data/hf-tokenizer.js';
import { buildNiahCases, type Haystack } from '../../eval/niah-cases.js';
import { haystackFromTokenFile, niahEvaluation, writeNiahResults } from '../../eval/niah-results.js';
import { evaluateNiah } from '../../eval/niah-run.js';
import { summarize } from '../../eval/niah-score.js';

export interface NiahFollowUpOptions {
  redis: Redis;
  queue: JobQueue;
  history: TelemetryHistory;
  log: (line: string) => void;
}

/** Everything one evaluation needs, taken from the job's spec and its checkpoint event. */
export interface NiahEvaluationRequest {
  step: number;
  checkpoint: string;
  niah: NiahEvalSpec;
  /** The job's devices: the evaluation's ranks. */
  ranks: number;
  deviceBudgetBytes?: number;
}

/** Evaluates one checkpoint as a spec's eval.niah says; throws what went wrong. */
export async function evaluateCheckpoint(r: NiahEvaluationRequest): Promise<NiahEvaluation> {
  const started = Date.now();
  const { niah } = r;
  const tokenizer = await openTokenizer(niah.tokenizer);
  const haystack: Haystack =
    niah.haystack.kind === 'file'
      ? await haystackFromTokenFile(niah.haystack.path, Math.max(...niah.lengths))
      : { kind: 'generated', seed: niah.haystack.seed };
  const cases = buildNiahCases({
    contextLengths: niah.lengths,
    depths: niah.depths,
    tokenizer,
    haystack,
    seed: niah.seed,
    lengthMultiple: 2 * r.ranks,
  });
  const results = await evaluateNiah(cases, {
    checkpoint: r.checkpoint,
    ranks: r.ranks,
    ...(niah.rope_theta !== undefined ? { ropeTheta: niah.rope_theta } : {}),
    ...(r.deviceBudgetBytes !== undefined ? { deviceBudgetBytes: r.deviceBudgetBytes } : {}),
  });
  const report = summarize(niah.lengths, niah.depths, results);
  const settings = {
    tokenizer: tokenizer.name,
    haystack: niah.haystack.kind === 'file' ? niah.haystack.path : `generated:${niah.haystack.seed}`,
    seed: niah.seed,
    ranks: r.ranks,
    ropeTheta: niah.rope_theta ?? null,
    evaluatedAtMs: Date.now(),
    seconds: (Date.now() - started) / 1000,
  };
  await writeNiahResults(r.checkpoint, settings, report);
  return niahEvaluation(r.step, r.checkpoint, settings, report);
}

export class NiahFollowUp {
  private readonly subscriber: Redis;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private closed = false;
  /** Resolves once the subscription is in place. */
  readonly ready: Promise<void>;

  constructor(private readonly o: NiahFollowUpOptions) {
    // A subscribed connection can do nothing else, hence a connection of its own.
    this.subscriber = o.redis.duplicate();
    this.subscriber.on('pmessage', (_pattern: string, _channel: string, message: string) => {
      let update: TelemetryUpdate;
      try {
        update = JSON.parse(message) as TelemetryUpdate;
      } catch {
        return;
      }
      if (update.type === 'event' && update.event.kind === 'checkpoint-saved' && update.event.checkpoint)
        this.consider(update.jobId, update.event.checkpoint.step, update.event.checkpoint.path);
    });
    this.ready = this.subscriber.psubscribe(o.history.channel('*')).then(() => undefined);
    this.ready.catch((err: unknown) => o.log(`niah follow-up: ${String(err)}`));
  }

  private consider(jobId: string, step: number, checkpoint: string): void {
    this.pending++;
    this.chain = this.chain
      .then(async () => {
        if (this.closed) return;
        const job = await this.o.queue.get(jobId);
        const niah = job?.spec.eval?.niah;
        if (!job || !niah || !niah.steps.includes(step)) return;
        this.o.log(`job ${jobId}: NIAH evaluation of checkpoint step ${step}`);
        let evaluation: NiahEvaluation;
        const started = Date.now();
        try {
          evaluation = await evaluateCheckpoint({
            step,
            checkpoint,
            niah,
            ranks: job.spec.devices,
            ...(job.spec.device_memory !== undefined ? { deviceBudgetBytes: job.spec.device_memory } : {}),
          });
          this.o.log(
            `job ${jobId}: NIAH step ${step}: accuracy ${(evaluation.accuracy * 100).toFixed(1)}% over ${evaluation.cells.length} cases`,
          );
        } catch (err) {
          const error = err instanceof Error ? err.message : String(err);
          this.o.log(`job ${jobId}: NIAH evaluation of step ${step} failed: ${error}`);
          evaluation = {
            step,
            checkpoint,
            contextLengths: niah.lengths,
            depths: niah.depths,
            cells: [],
            accuracy: 0,
            ropeTheta: niah.rope_theta ?? null,
            seconds: (Date.now() - started) / 1000,
            timeMs: Date.now(),
            error,
          };
        }
        await this.o.history.recordNiah(jobId, evaluation);
      })
      .catch((err: unknown) => this.o.log(`niah follow-up: ${String(err)}`))
      .finally(() => this.pending--);
  }

  /** Resolves when no evaluation is running or waiting. */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.chain;
  }

  /**
   * Stops listening and starts no more evaluations. One under way is not waited for (a stopping
   * server should not wait minutes): its rank processes end with this process.
   */
  close(): void {
    this.closed = true;
    this.subscriber.disconnect();
  }
}
