// The orchestrator process: `longctx server`. One gRPC port serves Control (CLI, dashboard) and
// Telemetry (workers); an HTTP port serves the dashboard and /metrics. State lives in Redis —
// a URL given, or a private redis-server started here (the embedded default) — so a restarted
// server picks up every job where it was. With `localAgent` it also runs a node agent for this
// machine's devices (N emulated CPU devices when there is no GPU).
import { Server, ServerCredentials } from '@grpc/grpc-js';
import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type { Redis } from 'ioredis';

import { NodeAgent } from '../cluster/agent.js';
import { startEmbeddedRedis, type EmbeddedRedis } from '../cluster/embedded-redis.js';
import { detectInventory, loadNodeFile, nativeSgemmRate, type NodeFile } from '../cluster/inventory.js';
import { controlService, telemetryService } from '../proto/services.js';
import { PlanStore } from './plan/plan-store.js';
import { ServerLock, stateDirOf } from './state/server-lock.js';
import { connectRedis, JobQueue } from '../control/job-queue.js';
import { Scheduler } from '../control/scheduler.js';
import { ControlService } from './rpc/control-service.js';
import { nodeDeviceProfile } from './plan/admission.js';
import { addStandardServices } from './rpc/standard-services.js';
import { TelemetryHistory } from '../control/telemetry-history.js';
import { subscriberConnection } from '../control/events.js';
import { TelemetryService } from './telemetry/telemetry-service.js';
import type { BackoffPolicy } from '../control/recovery.js';
import { Watchdog } from './watchdog.js';
import { NiahFollowUp } from './eval/niah-follow-up.js';

export const DEFAULT_GRPC_PORT = 7170;
export const DEFAULT_HTTP_PORT = 7171;

/** What the HTTP side (dashboard, /metrics) is given to serve from. */
export interface HttpContext {
  queue: JobQueue;
  history: TelemetryHistory;
  plans: PlanStore;
  redis: Redis;
  telemetry: TelemetryService;
  adminToken?: string;
  /** Where gRPC listens (the HTTP side names it for clients that came to the wrong port). */
  grpcAddress: string;
}

export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface ServerOptions {
  /** Redis to keep state in; absent: start a private redis-server (the embedded default). */
  redisUrl?: string;
  /**
   * The embedded Redis keeps its data in <runsDir>/.state/redis (append-only, fsync every second)
   * and the server takes that folder's lock (default true); false: a throwaway Redis, no lock.
   */
  durableState?: boolean;
  /** Take the runs folder's lock with an external Redis too (the CLI does: `server stop` finds it). */
  lockRunsDir?: boolean;
  /** Where gRPC and HTTP listen: 127.0.0.1 unless told otherwise. */
  host?: string;
  grpcPort?: number;
  /** 0 picks a free port; null: no HTTP server. */
  httpPort?: number | null;
  /** Required when host is not loopback: Control calls and the HTTP API must present it. */
  adminToken?: string;
  runsDir?: string;
  /** Run a node agent for this machine (default true). */
  localAgent?:
    boolean | { nodeFile?: string; devices?: number; deviceMemoryBytes?: number; measureSgemm?: boolean };
  /** Builds the HTTP handler (the dashboard and /metrics); without one, HTTP answers 404. */
  http?: (context: HttpContext) => HttpHandler;
  schedulerPollMs?: number;
  watchdog?: { silenceMs?: number; minStallMs?: number; startupMs?: number };
  /** Agent timings (tests shorten them). */
  agent?: { leaseMs?: number; lockDurationMs?: number; stalledIntervalMs?: number; graceMs?: number };
  /** Wait before restarting a failed job: base·2^restarts, capped (default 5 s, 5 min). */
  backoff?: BackoffPolicy;
  log?: (line: string) => void;
}

export interface RunningServer {
  grpcAddress: string;
  httpUrl?: string;
  redisUrl: string;
  embeddedRedis?: EmbeddedRedis;
  queue: JobQueue;
  history: TelemetryHistory;
  plans: PlanStore;
  telemetry: TelemetryService;
  agent?: NodeAgent;
  /** Runs the jobs' `eval: niah` on their checkpoints as they are saved. */
  niahFollowUp: NiahFollowUp;
  /** Stops everything this server started (the agent stops its gangs first). */
  stop(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host) && !options.adminToken) {
    throw new Error(
      `listening on ${host} (beyond loopback) needs an admin token: pass --admin-token or set LONGCTX_ADMIN_TOKEN`,
    );
  }
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.splice(0).reverse())
      await cleanup().catch((err: unknown) => log(`shutdown: ${String(err)}`));
  };
  try {
    const runsDir = resolve(options.runsDir ?? 'runs');
    const durable = !options.redisUrl && options.durableState !== false;
    let lock: ServerLock | undefined;
    if (durable || options.lockRunsDir) {
      // Before Redis starts: two servers must never open one append-only file.
      lock = await ServerLock.acquire(runsDir, log);
      const held = lock;
      cleanups.push(() => Promise.resolve(held.release()));
    }
    let embeddedRedis: EmbeddedRedis | undefined;
    let redisUrl = options.redisUrl;
    if (!redisUrl) {
      embeddedRedis = await startEmbeddedRedis(
        durable ? { dataDir: join(stateDirOf(runsDir), 'redis') } : {},
      );
      redisUrl = embeddedRedis.url;
      cleanups.push(() => embeddedRedis!.stop());
      lock?.update({ redis: { ...ServerLock.processRef(embeddedRedis.pid), url: redisUrl } });
      log(
        durable
          ? `no Redis configured: started a private redis-server at ${redisUrl}, state kept in ${embeddedRedis.dir}`
          : `no Redis configured: started a private redis-server at ${redisUrl} (data in ${embeddedRedis.dir}, removed at stop)`,
      );
    }
    const redis = connectRedis(redisUrl);
    cleanups.push(() => Promise.resolve(redis.disconnect()));
    const queue = new JobQueue(redis);
    cleanups.push(() => queue.close());
    const keys = queue.store.keys;
    const history = new TelemetryHistory(redis, keys);
    const plans = new PlanStore(redis, keys);
    const niahFollowUp = new NiahFollowUp({ redis, queue, history, log });
    cleanups.push(() => Promise.resolve(niahFollowUp.close()));
    await niahFollowUp.ready;
    // The dead server this one took the folder over from had an agent here: its lease is void.
    const previousAgent = lock?.previous?.agent;
    if (previousAgent) await queue.store.releaseLease(previousAgent.node, previousAgent.id);

    const telemetry = new TelemetryService({
      getJob: (id) => queue.get(id),
      history,
      // The same device profile the planner uses: an emulated device's share of the measured
      // sgemm rate of the node's cores, the datasheet for known GPUs.
      peakFlopsPerDevice: async (node) => {
        const status = (await queue.nodes()).find((n) => n.name === node);
        return status ? nodeDeviceProfile(status).peakFlops : 0;
      },
      log,
    });
    const control = new ControlService({
      queue,
      history,
      plans,
      runsDir,
      ...(options.adminToken ? { adminToken: options.adminToken } : {}),
      subscribe: async (channel, onMessage) => {
        const sub = subscriberConnection(redis);
        sub.on('message', (c: string, message: string) => {
          if (c === channel) onMessage(message);
        });
        await sub.subscribe(channel);
        return async () => void (await sub.quit());
      },
    });
    const grpc = new Server();
    grpc.addService(controlService, control.implementation());
    grpc.addService(telemetryService, telemetry.implementation());
    const standard = addStandardServices(grpc);
    const grpcPort = await new Promise<number>((ok, fail) =>
      grpc.bindAsync(
        `${host}:${options.grpcPort ?? DEFAULT_GRPC_PORT}`,
        ServerCredentials.createInsecure(),
        (err, port) => (err ? fail(err) : ok(port)),
      ),
    );
    cleanups.push(
      () =>
        new Promise<void>((done) => {
          standard.stopServing();
          grpc.tryShutdown(() => done());
        }),
    );
    const grpcAddress = `${host}:${grpcPort}`;

    const scheduler = new Scheduler({
      redis,
      pollMs: options.schedulerPollMs ?? 500,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      onError: (err: unknown) => log(`scheduler: ${err instanceof Error ? err.message : String(err)}`),
    });
    await scheduler.start();
    cleanups.push(() => scheduler.stop());

    const watchdog = new Watchdog({
      queue,
      history,
      redis,
      plannedStepSeconds: async (jobId) => (await plans.get(jobId))?.stepSeconds,
      ...options.watchdog,
      log,
    });
    watchdog.start();
    cleanups.push(() => Promise.resolve(watchdog.stop()));

    let httpUrl: string | undefined;
    if (options.httpPort !== null) {
      const handler = options.http?.({
        queue,
        history,
        plans,
        redis,
        telemetry,
        ...(options.adminToken ? { adminToken: options.adminToken } : {}),
        grpcAddress,
      });
      const http: HttpServer = createServer((req, res) => {
        if (handler) return handler(req, res);
        res.writeHead(404).end('no dashboard in this build\n');
      });
      const httpPort = await new Promise<number>((ok, fail) => {
        http.once('error', fail);
        http.listen(options.httpPort ?? DEFAULT_HTTP_PORT, host, () => {
          const address = http.address();
          ok(typeof address === 'object' && address ? address.port : 0);
        });
      });
      cleanups.push(
        () =>
          new Promise<void>((done) => {
            http.close(() => done());
            // Dashboards hold server-sent-event streams open: end them too.
            http.closeAllConnections();
          }),
      );
      httpUrl = `http://${host.includes(':') ? `[${host}]` : host}:${httpPort}`;
    }

    let agent: NodeAgent | undefined;
    if (options.localAgent !== false) {
      const o = typeof options.localAgent === 'object' ? options.localAgent : {};
      const file: NodeFile = o.nodeFile ? loadNodeFile(o.nodeFile) : {};
      if (o.devices !== undefined) file.devices = o.devices;
      if (o.deviceMemoryBytes !== undefined) file.device_memory = o.deviceMemoryBytes;
      const inventory = await detectInventory({
        nodeFile: file,
        nodeFilePath: o.nodeFile,
        ...(o.measureSgemm === false ? {} : { measureSgemm: nativeSgemmRate() }),
      });
      const agentRedis = connectRedis(redisUrl);
      cleanups.push(() => Promise.resolve(agentRedis.disconnect()));
      agent = new NodeAgent({
        redis: agentRedis,
        redisUrl,
        inventory,
        telemetryAddress: grpcAddress,
        runsDir,
        log,
        ...options.agent,
        ...(options.backoff ? { backoff: options.backoff } : {}),
      });
      await agent.start();
      lock?.update({ agent: { id: agent.id, node: agent.node } });
      const started = agent;
      cleanups.push(() => started.stop('the server is shutting down'));
      log(`node ${inventory.node}: ${inventory.devices.length} ${inventory.kind} devices`);
    }
    lock?.update({ grpcAddress, ...(httpUrl ? { httpUrl } : {}) });
    log(`longctx server: gRPC ${grpcAddress}${httpUrl ? `, dashboard ${httpUrl}` : ''}, runs in ${runsDir}`);
    return {
      grpcAddress,
      ...(httpUrl ? { httpUrl } : {}),
      redisUrl,
      ...(embeddedRedis ? { embeddedRedis } : {}),
      queue,
      history,
      plans,
      telemetry,
      ...(agent ? { agent } : {}),
      niahFollowUp,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
