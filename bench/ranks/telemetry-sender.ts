// The worker side of the telemetry benchmark (bench/control.ts): `node telemetry-sender.js '<json>'`.
// Opens one TelemetryClient stream per rank of a placed job (the worker's own client, registering
// with the job's token), waits until every stream is acknowledged, then has every rank send
// `reportsPerStream` step reports as fast as it can, steps 1, 2, … in order as a training rank
// would. Reports {ready} once registered and {sent, seconds} once everything is written.
import { exitWithParent, report } from '../../worker-native/host/rank-processes.js';
import { TelemetryClient } from '../../worker-native/host/telemetry-client.js';

export interface TelemetrySenderJob {
  address: string;
  jobId: string;
  attempt: number;
  token: string;
  world: number;
  reportsPerStream: number;
}

/** Writes between yields to the event loop, so grpc-js gets to move bytes while we produce them. */
const BURST = 256;

function stepReport(step: number) {
  return {
    step,
    loss: 2.5,
    tokens: 4096,
    lr: 1e-4,
    gradNorm: 0.5,
    stepSeconds: 0.5,
    compute: 0.4,
    commWait: 0.05,
    data: 0.01,
    optimizer: 0.03,
    checkpoint: 0,
    deviceBytesCurrent: 1 << 28,
    deviceBytesPeak: 1 << 29,
    hostBytes: 0,
    bytesSent: 1 << 22,
  };
}

async function main(): Promise<void> {
  exitWithParent();
  const job = JSON.parse(process.argv[2] ?? '{}') as TelemetrySenderJob;
  let acked = 0;
  let wake: () => void = () => {};
  const clients = Array.from(
    { length: job.world },
    (_, rank) =>
      new TelemetryClient(
        job.address,
        {
          jobId: job.jobId,
          attempt: job.attempt,
          rank,
          worldSize: job.world,
          token: job.token,
          node: 'bench',
        },
        (kind) => {
          if (kind === 'ack') acked++;
          wake();
        },
      ),
  );
  while (acked < job.world) {
    for (const c of clients) if (c.error) throw c.error;
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 100);
    });
  }
  report({ ready: true });
  const started = performance.now();
  for (let step = 1; step <= job.reportsPerStream; step++) {
    for (const c of clients) c.reportStep(stepReport(step));
    if (step % BURST === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  for (const c of clients) if (c.error) throw c.error;
  report({ sent: job.world * job.reportsPerStream, seconds: (performance.now() - started) / 1000 });
  // Streams stay open until the benchmark closes our stdin (exitWithParent).
}

main().catch((err: unknown) => {
  report({ error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
