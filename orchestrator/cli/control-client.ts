// The CLI's side of the Control gRPC service: typed unary calls with a deadline, the admin token
// as `authorization: Bearer`, the WatchJob stream, and gRPC failures turned into CliErrors with
// exit codes and a sentence saying what to do.
import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  status,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';

import { get as httpGet } from 'node:http';

import { controlService, longctx } from '../../proto/services.js';
import { GRPC_ADDRESS_HEADER } from '../http/app.js';
import { DEFAULT_GRPC_PORT } from './args.js';
import { CliError, ExitCode } from './exit-codes.js';

const ControlClientConstructor = makeGenericClientConstructor(controlService, 'Control');

type UnaryMethod = (
  request: object,
  metadata: Metadata,
  options: { deadline: number },
  callback: (err: ServiceError | null, response: unknown) => void,
) => void;

export const CALL_TIMEOUT_MS = 30_000;

/** Whether `address` answers HTTP/1.1, and the gRPC port it names when it is a longctx server's. */
function answersHttp(address: string): Promise<{ grpcPort?: string } | undefined> {
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(`http://${address}/healthz`);
    } catch {
      return resolve(undefined);
    }
    const request = httpGet(url, { timeout: 2000 }, (response) => {
      response.resume();
      const named = response.headers[GRPC_ADDRESS_HEADER];
      const port = typeof named === 'string' ? /:(\d+)$/.exec(named)?.[1] : undefined;
      resolve(port ? { grpcPort: port } : {});
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}

function httpNotGrpc(address: string, grpcPort: string | undefined): CliError {
  const host = address.slice(0, address.lastIndexOf(':'));
  const where = grpcPort
    ? `this server's gRPC port is ${grpcPort}: use --server ${host}:${grpcPort}`
    : `point --server at the orchestrator's gRPC port ('longctx server' prints it as "gRPC HOST:PORT"; default ${DEFAULT_GRPC_PORT})`;
  return new CliError(
    ExitCode.UNREACHABLE,
    `${address} answers HTTP, not gRPC (it looks like the dashboard's HTTP port): ${where}`,
  );
}

export class ControlClient {
  private readonly client: InstanceType<typeof ControlClientConstructor>;
  private readonly metadata = new Metadata();

  constructor(
    readonly address: string,
    token?: string,
  ) {
    this.client = new ControlClientConstructor(address, credentials.createInsecure());
    if (token) this.metadata.set('authorization', `Bearer ${token}`);
  }

  private unary<Res>(method: string, request: object, timeoutMs = CALL_TIMEOUT_MS): Promise<Res> {
    const fn = (this.client as unknown as Record<string, UnaryMethod>)[method]!.bind(this.client);
    return new Promise((resolve, reject) => {
      fn(request, this.metadata, { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (!err) return resolve(response as Res);
        if (err.code !== status.UNAVAILABLE || !/Protocol error/i.test(err.details))
          return reject(this.explain(err));
        // Something answered, but not in HTTP/2: most likely the dashboard's HTTP port.
        void answersHttp(this.address).then((http) =>
          reject(http ? httpNotGrpc(this.address, http.grpcPort) : this.explain(err)),
        );
      });
    });
  }

  /** A gRPC failure as the CLI reports it. */
  explain(err: ServiceError): CliError {
    switch (err.code) {
      case status.UNAVAILABLE:
      case status.DEADLINE_EXCEEDED:
        return new CliError(
          ExitCode.UNREACHABLE,
          `cannot reach the longctx server at ${this.address} (${err.details || 'no answer'}): start one with 'longctx server', or point --server or LONGCTX_SERVER at it`,
        );
      case status.UNAUTHENTICATED:
        return new CliError(
          ExitCode.UNREACHABLE,
          `the server at ${this.address} refused the call (${err.details}): pass its admin token with --token or LONGCTX_TOKEN`,
        );
      case status.NOT_FOUND:
        return new CliError(ExitCode.NOT_FOUND, `${err.details}: 'longctx ls' lists the jobs`);
      default:
        // The Control service reports an unknown job in GetJob as an error with this wording.
        if (/^no job '/.test(err.details))
          return new CliError(ExitCode.NOT_FOUND, `${err.details}: 'longctx ls' lists the jobs`);
        return new CliError(ExitCode.FAILURE, `the server at ${this.address} failed: ${err.details}`);
    }
  }

  submitJob(specYaml: string, specPath: string): Promise<longctx.SubmitJobResponse> {
    return this.unary('submitJob', { specYaml, specPath });
  }

  planJob(specYaml: string, specPath: string, maxContext: boolean): Promise<longctx.PlanJobResponse> {
    return this.unary('planJob', { specYaml, specPath, maxContext });
  }

  listJobs(states: longctx.JobState[] = []): Promise<longctx.ListJobsResponse> {
    return this.unary('listJobs', { states });
  }

  getJob(jobId: string): Promise<longctx.JobDetail> {
    return this.unary('getJob', { jobId });
  }

  cancelJob(jobId: string): Promise<longctx.CancelJobResponse> {
    return this.unary('cancelJob', { jobId });
  }

  resumeJob(jobId: string): Promise<longctx.ResumeJobResponse> {
    return this.unary('resumeJob', { jobId });
  }

  /** The job's updates as they happen; the stream ends when the job does. */
  watchJob(jobId: string): ClientReadableStream<longctx.JobUpdate> {
    const fn = (this.client as unknown as Record<string, (r: object, m: Metadata) => unknown>).watchJob!;
    return fn.call(this.client, { jobId }, this.metadata) as ClientReadableStream<longctx.JobUpdate>;
  }

  close(): void {
    this.client.close();
  }
}
