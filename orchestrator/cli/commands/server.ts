// `longctx server`: the orchestrator (gRPC Control + Telemetry, scheduler, watchdog), the
// dashboard and /metrics over HTTP, and a node agent for this machine's devices. Without a Redis
// URL it starts its own private redis-server and says where. Runs until Ctrl-C or SIGTERM, then
// stops its gangs and everything it started.
import { parseBytes } from '../../../cluster/inventory.js';
import { httpAppForServer } from '../../http/app.js';
import { startServer, type ServerOptions } from '../../server.js';
import { DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, UsageError, type Args } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';

const HELP = `Usage: longctx server [options]

Runs the orchestrator: the gRPC Control service the CLI talks to, the Telemetry service the
workers report to, the scheduler and the watchdog; the dashboard and Prometheus /metrics over
HTTP; and a node agent for this machine (its GPUs, or emulated CPU devices). State lives in Redis:
without --redis (or $LONGCTX_REDIS_URL) a private redis-server is started for this run and its
address printed. Stops on Ctrl-C or SIGTERM, stopping running gangs first.

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
  };
  if (io.signal.aborted) return ExitCode.INTERRUPTED;
  let server;
  try {
    server = await startServer(options);
  } catch (err) {
    await app.close();
    const message = err instanceof Error ? err.message : String(err);
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
  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener('abort', () => resolve(), { once: true });
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
  },
  run,
};
