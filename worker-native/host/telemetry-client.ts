// A worker's side of the Telemetry service: one bidirectional gRPC stream per rank. The first
// message registers (job, attempt, rank, token); then step reports, heartbeats and events flow
// out, and the orchestrator's commands (ack, checkpoint now, stop) flow back.
//
// Training never waits for telemetry. When the stream breaks (the orchestrator restarted while
// this gang keeps running on its agent), the client reconnects with exponential backoff and
// registers again; step reports and events written meanwhile wait in a bounded outbox (the oldest
// are dropped past its limit, and the count is said on reconnect), heartbeats are not kept. A
// refusal (wrong token, an attempt that is over) is final: nothing more is sent.
import {
  credentials,
  makeGenericClientConstructor,
  status,
  type ClientDuplexStream,
  type ServiceError,
} from '@grpc/grpc-js';

import type { RankStep, WorkerEventKind, WorkerEventRecord } from '../../core/reports.js';
import { rankStepToProto, workerEventToProto } from '../../proto/convert.js';
import { longctx, telemetryService } from '../../proto/services.js';

export interface TelemetryIdentity {
  jobId: string;
  attempt: number;
  rank: number;
  worldSize: number;
  token: string;
  node: string;
}

export type TelemetryCommandKind = 'ack' | 'checkpoint-now' | 'stop';

export interface TelemetryClientOptions {
  heartbeatMs?: number;
  /** Wait before reconnecting: baseMs·2^tries up to maxMs, with jitter (default 250 ms, 10 s). */
  reconnect?: { baseMs: number; maxMs: number };
  /** Reports and events kept while disconnected (default 1000). */
  outboxLimit?: number;
  /** Says when the stream breaks, reconnects, or drops reports. */
  onStatus?: (line: string) => void;
}

const TelemetryClientConstructor = makeGenericClientConstructor(telemetryService, 'Telemetry');

/** Refusals of the registration: no reconnect can change them. */
const FINAL_CODES = new Set<number>([
  status.UNAUTHENTICATED,
  status.FAILED_PRECONDITION,
  status.NOT_FOUND,
  status.INVALID_ARGUMENT,
  status.PERMISSION_DENIED,
]);

type Stream = ClientDuplexStream<object, longctx.TelemetryCommand>;

export class TelemetryClient {
  private client: InstanceType<typeof TelemetryClientConstructor>;
  private stream: Stream | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private tries = 0;
  private step = 0;
  private closed = false;
  private readonly outbox: longctx.ITelemetryMessage[] = [];
  private readonly options: Required<Omit<TelemetryClientOptions, 'onStatus'>> &
    Pick<TelemetryClientOptions, 'onStatus'>;
  /** Reports and events dropped because the outbox was full while disconnected. */
  dropped = 0;
  /** How many times the stream was opened again after breaking. */
  reconnects = 0;
  /** Set when the orchestrator refused this rank; writes after that are dropped. */
  error: Error | undefined;

  constructor(
    private readonly address: string,
    private readonly identity: TelemetryIdentity,
    private readonly onCommand: (kind: TelemetryCommandKind, message: string) => void,
    options: number | TelemetryClientOptions = {},
  ) {
    const o = typeof options === 'number' ? { heartbeatMs: options } : options;
    this.options = {
      heartbeatMs: o.heartbeatMs ?? 1000,
      reconnect: o.reconnect ?? { baseMs: 250, maxMs: 10_000 },
      outboxLimit: o.outboxLimit ?? 1000,
      onStatus: o.onStatus,
    };
    this.client = new TelemetryClientConstructor(address, credentials.createInsecure());
    this.open();
    this.heartbeat = setInterval(() => {
      if (this.stream) this.stream.write({ heartbeat: { timeMs: Date.now(), step: this.step } });
    }, this.options.heartbeatMs);
    this.heartbeat.unref();
  }

  private open(): void {
    const open = (this.client as unknown as { stream(): Stream }).stream.bind(this.client);
    const stream = open();
    this.stream = stream;
    let broken = false;
    const onBroken = (err?: ServiceError) => {
      if (broken || this.closed) return;
      broken = true;
      if (this.stream === stream) this.stream = undefined;
      if (err && FINAL_CODES.has(err.code)) {
        this.error = err;
        this.outbox.length = 0;
        return;
      }
      this.scheduleReconnect(err?.details ?? 'the stream ended');
    };
    stream.on('data', (command: longctx.TelemetryCommand) => {
      const kinds: Record<number, TelemetryCommandKind> = {
        [longctx.TelemetryCommand.Kind.KIND_ACK]: 'ack',
        [longctx.TelemetryCommand.Kind.KIND_CHECKPOINT_NOW]: 'checkpoint-now',
        [longctx.TelemetryCommand.Kind.KIND_STOP]: 'stop',
      };
      const kind = kinds[command.kind];
      if (kind === 'ack') this.tries = 0; // registered: the next break starts from the base wait
      if (kind) this.onCommand(kind, command.message);
    });
    stream.on('error', (err: ServiceError) => onBroken(err));
    stream.on('end', () => onBroken());
    stream.write({ registration: { ...this.identity, pid: process.pid } });
    // What waited while disconnected goes first, in order.
    for (const message of this.outbox.splice(0)) stream.write(message);
  }

  private scheduleReconnect(why: string): void {
    const { baseMs, maxMs } = this.options.reconnect;
    const wait = Math.min(maxMs, baseMs * 2 ** this.tries) * (0.5 + Math.random() / 2);
    this.tries++;
    this.options.onStatus?.(`telemetry stream broke (${why}); reconnecting in ${Math.round(wait)} ms`);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.closed) return;
      this.reconnects++;
      // A fresh channel: the old one may sit in grpc's own connection backoff (1 s growing to
      // 120 s), which would hold the new stream back past the server's return.
      this.client.close();
      this.client = new TelemetryClientConstructor(this.address, credentials.createInsecure());
      if (this.dropped > 0)
        this.options.onStatus?.(`telemetry: ${this.dropped} reports dropped so far while disconnected`);
      this.open();
    }, wait);
    this.retry.unref();
  }

  private write(message: longctx.ITelemetryMessage): void {
    if (this.closed || this.error) return;
    if (this.stream) {
      this.stream.write(message);
      return;
    }
    this.outbox.push(message);
    if (this.outbox.length > this.options.outboxLimit) {
      this.outbox.shift();
      this.dropped++;
    }
  }

  reportStep(report: Omit<RankStep, 'rank' | 'timeMs'>): void {
    this.step = report.step;
    this.write({
      step: {
        ...rankStepToProto({ ...report, timeMs: Date.now() }),
        jobId: this.identity.jobId,
        rank: this.identity.rank,
      },
    });
  }

  /** An event at the rank's latest step, or at `at.step` (a resumed attempt's is the step it continues from). */
  reportEvent(
    kind: WorkerEventKind,
    message: string,
    at: { step?: number; checkpoint?: WorkerEventRecord['checkpoint'] } = {},
  ): void {
    this.write({
      event: workerEventToProto(this.identity.jobId, {
        kind,
        message,
        rank: this.identity.rank,
        step: at.step ?? this.step,
        timeMs: Date.now(),
        ...(at.checkpoint ? { checkpoint: at.checkpoint } : {}),
      }),
    });
  }

  /** Ends the stream after what was written has been sent. */
  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (this.retry) clearTimeout(this.retry);
    if (this.closed) return;
    this.closed = true;
    const stream = this.stream;
    if (stream) {
      await new Promise<void>((resolve) => {
        stream.on('close', resolve);
        stream.on('end', resolve);
        stream.on('error', () => resolve());
        stream.end();
        setTimeout(resolve, 2000).unref();
      });
    }
    this.client.close();
  }
}
