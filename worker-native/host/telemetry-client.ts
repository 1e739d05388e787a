// A worker's side of the Telemetry service: one bidirectional gRPC stream per rank. The first
// message registers (job, attempt, rank, token); then step reports, heartbeats and events flow
// out, and the orchestrator's commands (ack, checkpoint now, stop) flow back.
import { credentials, makeGenericClientConstructor, type ClientDuplexStream } from '@grpc/grpc-js';

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

const TelemetryClientConstructor = makeGenericClientConstructor(telemetryService, 'Telemetry');

export class TelemetryClient {
  private readonly stream: ClientDuplexStream<object, longctx.TelemetryCommand>;
  private readonly client: InstanceType<typeof TelemetryClientConstructor>;
  private heartbeat: NodeJS.Timeout | undefined;
  private step = 0;
  private closed = false;
  /** Set when the stream failed; writes after that are dropped (training does not stop for it). */
  error: Error | undefined;

  constructor(
    address: string,
    private readonly identity: TelemetryIdentity,
    onCommand: (kind: TelemetryCommandKind, message: string) => void,
    heartbeatMs = 1000,
  ) {
    this.client = new TelemetryClientConstructor(address, credentials.createInsecure());
    const open = (
      this.client as unknown as { stream(): ClientDuplexStream<object, longctx.TelemetryCommand> }
    ).stream.bind(this.client);
    this.stream = open();
    this.stream.on('data', (command: longctx.TelemetryCommand) => {
      const kinds: Record<number, TelemetryCommandKind> = {
        [longctx.TelemetryCommand.Kind.KIND_ACK]: 'ack',
        [longctx.TelemetryCommand.Kind.KIND_CHECKPOINT_NOW]: 'checkpoint-now',
        [longctx.TelemetryCommand.Kind.KIND_STOP]: 'stop',
      };
      const kind = kinds[command.kind];
      if (kind) onCommand(kind, command.message);
    });
    this.stream.on('error', (err: Error) => {
      if (!this.closed) this.error = err;
    });
    this.write({ registration: { ...identity, pid: process.pid } });
    this.heartbeat = setInterval(
      () => this.write({ heartbeat: { timeMs: Date.now(), step: this.step } }),
      heartbeatMs,
    );
    this.heartbeat.unref();
  }

  private write(message: longctx.ITelemetryMessage): void {
    if (this.closed || this.error) return;
    this.stream.write(message);
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
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      this.stream.on('close', resolve);
      this.stream.on('end', resolve);
      this.stream.end();
      setTimeout(resolve, 2000).unref();
    });
    this.client.close();
  }
}
