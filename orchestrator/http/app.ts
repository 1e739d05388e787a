// The orchestrator's HTTP side, as one request handler the server mounts on its HTTP listener:
//   GET /                         the dashboard (static files built into dist/orchestrator/dashboard)
//   GET /api/jobs                 the jobs table as JSON
//   GET /api/jobs/<id>            one job's detail as JSON
//   GET /api/stream               server-sent events: the table, then each row as it changes
//   GET /api/jobs/<id>/stream     server-sent events: the detail, then steps, worker events, states
//   GET /api/jobs/<id>/niah       the job's NIAH evaluations (its spec's eval: niah), by step
//   GET /metrics                  Prometheus text exposition
//   GET /healthz                  liveness, never behind the admin token; names the gRPC address
// With an admin token (a server listening beyond loopback) everything else needs it: see auth.ts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';

import type { JobQueue } from '../../control/job-queue.js';
import type { TelemetryHistory } from '../../control/telemetry-history.js';
import { isAdminToken, isAuthorized, tokenCookie } from './auth.js';
import { DashboardApi } from './dashboard-api.js';
import { LiveFeed } from './live-feed.js';
import { createMetrics, type TelemetryCounts } from './metrics.js';
import { DEFAULT_DASHBOARD_DIR, serveDashboardFile } from './static-files.js';
import type { JobPlan } from './views.js';

/**
 * What the app serves from. The fields match orchestrator/server.ts's HttpContext, so the server
 * can hand its context over as it is: `http: (context) => createHttpApp(context).handler`.
 */
export interface HttpAppOptions {
  queue: JobQueue;
  history: TelemetryHistory;
  /** A command connection; the app duplicates it once for its pub/sub subscription. */
  redis: Redis;
  /** The plan each job was accepted with (PlanStore). */
  plans: { get(jobId: string): Promise<JobPlan | undefined> };
  /** When set, required on every route but /healthz (Bearer header, or the dashboard's cookie). */
  adminToken?: string;
  /** The Telemetry service, for its count of ingested reports in /metrics. */
  telemetry?: TelemetryCounts;
  /** The server's gRPC address (host:port), named on /healthz. */
  grpcAddress?: string;
  /** Where the built dashboard is (default: dist/orchestrator/dashboard). */
  dashboardDir?: string;
  /** Export the process's CPU/memory/event-loop metrics too (default true). */
  processMetrics?: boolean;
  log?: (line: string) => void;
}

export interface HttpApp {
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Resolves once live updates flow (the Redis subscription is in place). */
  ready: Promise<void>;
  /** Ends the live subscription and every open event stream; the listener is the caller's. */
  close(): Promise<void>;
}

/** The header /healthz carries: where the server's gRPC listens (a CLI at the wrong port reads it). */
export const GRPC_ADDRESS_HEADER = 'x-longctx-grpc-address';

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export function createHttpApp(options: HttpAppOptions): HttpApp {
  const log = options.log ?? ((line: string) => console.error(`http: ${line}`));
  const getPlan = (jobId: string) => options.plans.get(jobId);
  const live = new LiveFeed(options.redis, options.queue.store.keys, options.history, log);
  const api = new DashboardApi({ queue: options.queue, history: options.history, live, getPlan });
  const metrics = createMetrics({
    queue: options.queue,
    history: options.history,
    live,
    getPlan,
    telemetry: options.telemetry,
    processMetrics: options.processMetrics,
  });
  const dashboardDir = options.dashboardDir ?? DEFAULT_DASHBOARD_DIR;
  const open = new Set<ServerResponse>();

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path === '/healthz') {
      // Says where gRPC is, so a CLI pointed at this port by mistake can say which one to use.
      if (options.grpcAddress) res.setHeader(GRPC_ADDRESS_HEADER, options.grpcAddress);
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('ok\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new HttpError(
        405,
        `${req.method ?? '?'} is not allowed: the HTTP API is read-only (use the CLI)`,
      );
    }
    // The sign-in link: remember the token in a cookie, then show the dashboard without it in the URL.
    if (path === '/' && url.searchParams.has('token')) {
      if (!isAdminToken(url.searchParams.get('token'), options.adminToken))
        throw new HttpError(401, 'that is not the admin token of this server');
      res.writeHead(303, { location: '/', 'set-cookie': tokenCookie(options.adminToken!) });
      res.end();
      return;
    }
    if (!isAuthorized(req, options.adminToken)) {
      res.setHeader('www-authenticate', 'Bearer realm="longctx"');
      throw new HttpError(
        401,
        'this server needs its admin token: send "authorization: Bearer <token>", or open the dashboard once as /?token=<token>',
      );
    }
    if (path === '/metrics') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
      res.end(text);
      return;
    }
    if (path === '/api/jobs') return sendJson(res, 200, { jobs: await api.rows() });
    if (path === '/api/stream') {
      open.add(res);
      res.on('close', () => open.delete(res));
      return api.streamJobs(req, res);
    }
    const job = /^\/api\/jobs\/([^/]+)(\/stream|\/niah)?$/.exec(path);
    if (job) {
      const jobId = decodeURIComponent(job[1]!);
      if (job[2] === '/niah') {
        const evaluations = await api.niah(jobId);
        if (!evaluations) throw new HttpError(404, `no job '${jobId}'`);
        return sendJson(res, 200, { evaluations });
      }
      if (job[2]) {
        open.add(res);
        res.on('close', () => open.delete(res));
        if (!(await api.streamJob(jobId, req, res))) throw new HttpError(404, `no job '${jobId}'`);
        return;
      }
      const detail = await api.detail(jobId);
      if (!detail) throw new HttpError(404, `no job '${jobId}'`);
      return sendJson(res, 200, detail);
    }
    if (path.startsWith('/api/')) throw new HttpError(404, `no API route ${path}`);
    const name = path === '/' ? 'index.html' : path.slice(1);
    if (!(await serveDashboardFile(dashboardDir, name, res)))
      throw new HttpError(404, `no such page ${path}`);
  }

  return {
    handler(req, res) {
      route(req, res).catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        if (status === 500) log(`${req.method ?? '?'} ${req.url ?? '?'}: ${String(err)}`);
        if (res.headersSent) return void res.end();
        sendJson(res, status, { error: err instanceof Error ? err.message : String(err) });
      });
    },
    ready: live.ready,
    close() {
      metrics.close();
      for (const res of open) res.end();
      open.clear();
      live.close();
      return Promise.resolve();
    },
  };
}

/**
 * The app in the shape startServer's `http` option takes (a factory of the request handler),
 * with a close() for when the server stops: the app holds a Redis subscription of its own.
 */
export function httpAppForServer(
  extra: Pick<HttpAppOptions, 'dashboardDir' | 'processMetrics' | 'log'> = {},
): {
  http: (context: Omit<HttpAppOptions, 'dashboardDir' | 'processMetrics' | 'log'>) => HttpApp['handler'];
  close(): Promise<void>;
} {
  let app: HttpApp | undefined;
  return {
    http: (context) => {
      app = createHttpApp({ ...context, ...extra });
      return app.handler;
    },
    close: async () => {
      await app?.close();
    },
  };
}
