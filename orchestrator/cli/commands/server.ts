// `longctx server`: the orchestrator (gRPC Control + Telemetry, scheduler, watchdog), the
// dashboard and /metrics over HTTP, and a node agent for this machine's devices. Without a Redis
// URL it starts its own private redis-server (data in runs/.state) and says where. Runs until
// Ctrl-C, SIGTERM, SIGHUP or `longctx server stop`, then stops its gangs and everything it started.
import { readFileSync } from 'node:fs';

import { parseBytes } from '../../../cluster/inventory.js';
import { httpAppForServer } from '../../http/app.js';
import { startServer, type ServerOptions } from '../../server.js';
import { isRunning, ServerLock, StateFolderLockedError, type ProcessRef } from '../../state/server-lock.js';
import { DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, UsageError, type Args } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { runServerStop } from './server-stop.js';

/**
 * Resolves when the server was started through npm/npx and that launcher is gone: npm does not
 * pass SIGTERM on to the command it runs (nor does the shell it runs it through), so the server
 * would otherwise keep running, holding its ports, after `kill` of the npx it was started with.
 * Watches every ancestor up to the npm process. Never resolves when npm did not start it.
 */
function watchLauncher(io: CliIo): Promise<void> {
  if (!io.env.npm_command && !io.env.npm_execpath) return new Promise(() => undefined);
  const chain: ProcessRef[] = [];
  for (let pid = process.ppid; pid > 1 && chain.length < 4; pid = parentOf(pid) ?? 0) {
    chain.push(ServerLock.processRef(pid));
    if (/\b(npm|npx)\b/.test(commandLine(pid))) break;
  }
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const gone = chain.find((p) => !isRunning(p));
      if (gone) {
        clearInterval(timer);
        io.stdout.write(`the process that launched this server (pid ${gone.pid}, npm/npx) is gone\n`);
        resolve();
      }
    }, 1000);
    io.signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  });
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

const HELP = `Usage: longctx server [options]
       longctx server stop [--runs DIR] [--timeout SECONDS]

Runs the orchestrator: the gRPC Control service the CLI talks to, the Telemetry service the
workers report to, the scheduler and the watchdog; the dashboard and Prometheus /metrics over
HTTP; and a node agent for this machine (its GPUs, or emulated CPU devices). State lives in Redis:
without --redis (or $LONGCTX_REDIS_URL) a private redis-server is started for this run and its
address printed; it keeps its data in RUNS/.state/redis (append-only, fsync every second), so a
server started again on the same runs folder finds every job as it was (queued jobs still queued,
running ones relaunched from their newest checkpoint). One server per runs folder: a second one
is refused. Stops on Ctrl-C, SIGTERM or SIGHUP, stopping running gangs and its Redis first;
'longctx server stop' does that from another shell.

Options:
  --redis URL              Redis to keep state in (default $LONGCTX_REDIS_URL, else a private one)
  --host HOST              address to listen on (default 127.0.0.1); beyond loopback needs --admin-token
  --port N                 gRPC port (default ${DEFAULT_GRPC_PORT}; 0 picks a free one)
  --http-port N            dashboard and /metrics port (default ${DEFAULT_HTTP_PORT}; 0 picks a free one)
  --no-http                no dashboard or /metrics
  --admin-token TOKEN      required of Control calls and HTTP requests (default $LONGCTX_ADMIN_TOKEN)
  --runs DIR               where runs/<job> folders go (default $LONGCTX_RUNS or ./runs)
  --no-agent               run no node agent here (agents run elsewhere: node dist/cluster/agent-main.js)
  --node-file FILE         this node's description for the agent (devices, budget, name)
  --devices N              emulated CPU devices for the agent (default 8)
  --device-memory BYTES    byte budget of each emulated device (e.g. 2GiB)
  -h, --help               show this help

${EXIT_CODES_HELP}`;

function port(args: Args, name: string, fallback: number): number {
  const value = args.integer(name, 0);
  if (value !== undefined && value > 65535)
    throw new UsageError(`--${name} must be a port (0..65535), got ${value}`);
  return value ?? fallback;
}

async function run(args: Args, io: CliIo): Promise<number> {
  if (args.positionals[0] === 'stop') return runServerStop(args, io);
  if (args.has('timeout')) throw new UsageError(`--timeout is an option of 'longctx server stop'`);
  args.expect();
  const agentFlags = ['node-file', 'devices', 'device-memory'].filter((f) => args.has(f));
  if (args.has('no-agent') && agentFlags.length > 0)
    throw new UsageError(`--no-agent runs no agent here: drop --${agentFlags.join(', --')}`);
  let deviceMemoryBytes: number | undefined;
  const memory = args.string('device-memory');
  if (memory !== undefined) {
    deviceMemoryBytes = parseBytes(memory);
    if (deviceMemoryBytes === undefined || deviceMemoryBytes <= 0)
      throw new UsageError(`--device-memory must be a byte count such as 2GiB or 536870912, got '${memory}'`);
  }
  const devices = args.integer('devices', 1);
  const nodeFile = args.string('node-file');
  const runs = args.string('runs') ?? (io.env.LONGCTX_RUNS || undefined);
  const adminToken = args.string('admin-token') ?? (io.env.LONGCTX_ADMIN_TOKEN || undefined);
  const redisUrl = args.string('redis') ?? (io.env.LONGCTX_REDIS_URL || undefined);
  const app = httpAppForServer({ log: (line) => io.stderr.write(`http: ${line}\n`) });
  const options: ServerOptions = {
    host: args.string('host') ?? '127.0.0.1',
    grpcPort: port(args, 'port', DEFAULT_GRPC_PORT),
    httpPort: args.has('no-http') ? null : port(args, 'http-port', DEFAULT_HTTP_PORT),
    localAgent: args.has('no-agent')
      ? false
      : {
          ...(nodeFile !== undefined ? { nodeFile } : {}),
          ...(devices !== undefined ? { devices } : {}),
          ...(deviceMemoryBytes !== undefined ? { deviceMemoryBytes } : {}),
        },
    http: app.http,
    log: (line) => io.stdout.write(`${line}\n`),
    ...(redisUrl ? { redisUrl } : {}),
    ...(adminToken ? { adminToken } : {}),
    ...(runs ? { runsDir: runs } : {}),
    lockRunsDir: true,
  };
  if (io.signal.aborted) return ExitCode.INTERRUPTED;
  let server;
  try {
    server = await startServer(options);
  } catch (err) {
    await app.close();
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof StateFolderLockedError) throw new CliError(ExitCode.FAILURE, message);
    if (/EADDRINUSE/.test(message))
      throw new CliError(
        ExitCode.FAILURE,
        `${message}: another server is running there; stop it, or pick --port/--http-port`,
      );
    throw new CliError(ExitCode.FAILURE, `the server did not start: ${message}`);
  }
  if (server.httpUrl) {
    const signIn = adminToken ? `${server.httpUrl}/?token=${encodeURIComponent(adminToken)}` : server.httpUrl;
    io.stdout.write(`dashboard: ${signIn}\nmetrics: ${server.httpUrl}/metrics\n`);
  }
  io.stdout.write(
    `ready: submit with 'longctx submit SPEC${server.grpcAddress === `127.0.0.1:${DEFAULT_GRPC_PORT}` ? '' : ` --server ${server.grpcAddress}`}'; Ctrl-C stops the server\n`,
  );
  const orphaned = watchLauncher(io);
  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener('abort', () => resolve(), { once: true });
    orphaned.then(resolve, resolve);
  });
  io.stdout.write('stopping: ending running gangs, then the server\n');
  await app.close();
  await server.stop();
  io.stdout.write('stopped\n');
  return ExitCode.OK;
}

export const serverCommand: Command = {
  name: 'server',
  summary: 'run the orchestrator, dashboard, /metrics and a local node agent',
  help: HELP,
  flags: {
    redis: 'string',
    host: 'string',
    port: 'string',
    'http-port': 'string',
    'no-http': 'boolean',
    'admin-token': 'string',
    runs: 'string',
    'no-agent': 'boolean',
    'node-file': 'string',
    devices: 'string',
    'device-memory': 'string',
    timeout: 'string',
  },
  run,
};
