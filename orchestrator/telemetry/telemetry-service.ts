// The orchestrator's side of the Telemetry gRPC service. Each rank opens one stream and must
// register first with its job id, attempt, rank and the attempt's token; anything else is
// refused (UNAUTHENTICATED or FAILED_PRECONDITION) before a single report is read. After that:
// heartbeats and reports mark the rank alive, step reports are aggregated across the gang into
// one record per step, and worker events are kept with the job.
//
// Messages wait in memory while Redis stores the ones before them. That wait is bounded per job
// (maxPendingPerJob): past it, step reports and heartbeats are dropped — counted, and said in the
// log once per burst — so a slow Redis or a flood of ranks cannot grow the server without bound.
// Registrations and worker events (checkpoints, errors) are never dropped.
import { status, type ServerDuplexStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';

import { rankStepFromProto, workerEventFromProto } from '../../proto/convert.js';
import { longctx } from '../../proto/services.js';
import { trainingFlopsPerStep } from '../plan/flops.js';
import type { JobRecord } from '../../control/job-record.js';
import type { TelemetryHistory } from '../../control/telemetry-history.js';
import { StepAggregator } from './step-aggregator.js';

type Call = ServerDuplexStream<longctx.TelemetryMessage, longctx.ITelemetryCommand>;

export interface TelemetryServiceOptions {
  /** The job record as the queue has it now. */
  getJob(jobId: string): Promise<JobRecord | undefined>;
  history: TelemetryHistory;
  /** Peak FLOP/s of one device of a node (measured sgemm for CPU devices), for MFU. */
  peakFlopsPerDevice(node: string): Promise<number>;
  /** Step reports and heartbeats of one job waiting to be stored, at most (default 1000). */
  maxPendingPerJob?: number;
  log?(message: string): void;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

interface Registered {
  jobId: string;
  attempt: number;
  rank: number;
}

export class TelemetryService {
  private readonly aggregators = new Map<string, Promise<StepAggregator>>();
  private readonly streams = new Map<string, Set<Call>>();
  /** Reports handled, for the ingestion benchmark and /metrics. */
  reportsIngested = 0;
  /** Step reports and heartbeats dropped because their job had too many waiting, all jobs. */
  reportsDropped = 0;
  /** The same drops per job since this server started, for /metrics. */
  readonly reportsDroppedByJob = new Map<string, number>();
  private readonly pending = new Map<string, number>();
  /** Drops per job since the log last said so. */
  private readonly droppedSinceLog = new Map<string, number>();

  constructor(private readonly options: TelemetryServiceOptions) {}

  implementation(): UntypedServiceImplementation {
    return { stream: (call: Call) => this.serve(call) };
  }

  /** Sends a command to every connected rank of a job (e.g. checkpoint now, stop). */
  command(jobId: string, kind: longctx.TelemetryCommand.Kind, message = ''): number {
    const calls = this.streams.get(jobId) ?? new Set<Call>();
    for (const call of calls) call.write({ kind, message });
    return calls.size;
  }

  private async check(
    r: longctx.IRegistration,
  ): Promise<{ job: JobRecord } | { code: status; reason: string }> {
    const jobId = r.jobId ?? '';
    const job = await this.options.getJob(jobId);
    if (!job) return { code: status.NOT_FOUND, reason: `no job '${jobId}'` };
    if (!job.token || !sameSecret(job.token, r.token ?? '')) {
      return {
        code: status.UNAUTHENTICATED,
        reason: `wrong telemetry token for job '${jobId}' attempt ${r.attempt ?? 0}`,
      };
    }
    if (job.attempt !== r.attempt) {
      return {
        code: status.FAILED_PRECONDITION,
        reason: `job '${jobId}' is on attempt ${job.attempt}, not ${r.attempt ?? 0}`,
      };
    }
    if ((r.rank ?? 0) >= job.devices) {
      return {
        code: status.INVALID_ARGUMENT,
        reason: `rank ${r.rank ?? 0} is outside the job's ${job.devices} ranks`,
      };
    }
    return { job };
  }

  private aggregator(job: JobRecord): Promise<StepAggregator> {
    const key = `${job.id}/${job.attempt}`;
    let found = this.aggregators.get(key);
    if (!found) {
      for (const k of this.aggregators.keys()) if (k.startsWith(`${job.id}/`)) this.aggregators.delete(k);
      found = this.options.peakFlopsPerDevice(job.node ?? '').then(
        (peak) =>
          new StepAggregator({
            worldSize: job.devices,
            flopsPerStep: trainingFlopsPerStep(
              job.spec.model.config,
              job.spec.seq_len,
              job.spec.grad_accumulation,
            ),
            peakFlopsPerDevice: peak,
          }),
      );
      this.aggregators.set(key, found);
    }
    return found;
  }

  private drop(jobId: string, limit: number): void {
    this.reportsDropped++;
    this.reportsDroppedByJob.set(jobId, (this.reportsDroppedByJob.get(jobId) ?? 0) + 1);
    const before = this.droppedSinceLog.get(jobId) ?? 0;
    this.droppedSinceLog.set(jobId, before + 1);
    if (before === 0)
      this.options.log?.(
        `telemetry: job ${jobId} has ${limit} reports waiting to be stored; dropping step reports and heartbeats until they are`,
      );
  }

  /** Once a job's backlog is cleared: how many of its reports were dropped. */
  private reportDrops(jobId: string): void {
    const dropped = this.droppedSinceLog.get(jobId);
    if (!dropped) return;
    this.droppedSinceLog.delete(jobId);
    this.options.log?.(`telemetry: job ${jobId}: ${dropped} reports dropped (backlog cleared)`);
  }

  private serve(call: Call): void {
    let who: Registered | undefined;
    let job: JobRecord | undefined;
    // Messages are handled one at a time, in order, even though handling is asynchronous.
    let queue: Promise<void> = Promise.resolve();
    const refuse = (code: status, details: string) => {
      this.options.log?.(`telemetry refused: ${details}`);
      call.emit('error', { code, details });
    };
    const forget = () => {
      if (who) this.streams.get(who.jobId)?.delete(call);
    };
    const limit = this.options.maxPendingPerJob ?? 1000;
    call.on('data', (message: longctx.TelemetryMessage) => {
      const jobId = who?.jobId;
      const droppable = jobId !== undefined && (message.body === 'step' || message.body === 'heartbeat');
      if (droppable) {
        if ((this.pending.get(jobId) ?? 0) >= limit) return this.drop(jobId, limit);
        this.pending.set(jobId, (this.pending.get(jobId) ?? 0) + 1);
      }
      queue = queue
        .then(async () => {
          if (!who) {
            if (message.body !== 'registration' || !message.registration) {
              return refuse(status.UNAUTHENTICATED, 'the first telemetry message must be a registration');
            }
            const verdict = await this.check(message.registration);
            if ('code' in verdict) return refuse(verdict.code, verdict.reason);
            job = verdict.job;
            who = { jobId: job.id, attempt: job.attempt, rank: message.registration.rank ?? 0 };
            let calls = this.streams.get(job.id);
            if (!calls) this.streams.set(job.id, (calls = new Set()));
            calls.add(call);
            await this.options.history.heard(who.jobId, who.attempt, who.rank, Date.now());
            call.write({
              kind: longctx.TelemetryCommand.Kind.KIND_ACK,
              message: `registered rank ${who.rank}`,
            });
            return;
          }
          this.reportsIngested++;
          await this.options.history.heard(who.jobId, who.attempt, who.rank, Date.now());
          if (message.body === 'step' && message.step && job) {
            const report = rankStepFromProto(message.step, who.rank);
            const summary = (await this.aggregator(job)).add(report);
            if (summary) await this.options.history.recordStep(who.jobId, who.attempt, summary);
          } else if (message.body === 'event' && message.event) {
            await this.options.history.recordWorkerEvent(
              who.jobId,
              workerEventFromProto(message.event, who.rank, who.attempt),
            );
          }
        })
        .catch((err: unknown) =>
          this.options.log?.(`telemetry: ${err instanceof Error ? err.message : String(err)}`),
        )
        .finally(() => {
          if (!droppable) return;
          const left = (this.pending.get(jobId) ?? 1) - 1;
          if (left > 0) this.pending.set(jobId, left);
          else {
            this.pending.delete(jobId);
            this.reportDrops(jobId);
          }
        });
    });
    call.on('end', () => {
      forget();
      call.end();
    });
    call.on('error', forget);
    call.on('cancelled', forget);
  }
}
