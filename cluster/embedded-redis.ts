// A private redis-server: the embedded default when no Redis URL is configured, and what every
// test starts for itself. It listens on 127.0.0.1 on a free port. Two kinds:
// - temporary (no dataDir): persistence off, files in a fresh temporary folder removed when it stops;
// - durable (dataDir): append-only file fsynced every second in dataDir, kept across restarts, so
//   a server started again on the same folder finds every job as it was.
//
// redis-server runs under a small bash watcher, in its own process group: the watcher holds a pipe
// from this process and stops redis (and removes a temporary folder) when the pipe closes — when
// stop() is called, and also when this process dies without calling it (SIGKILL, a crash), since
// node offers no parent-death signal. Its own group keeps a terminal's Ctrl-C from reaching redis
// before the server has stopped its gangs (which still need Redis to record how they ended).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface EmbeddedRedis {
  host: string;
  port: number;
  url: string;
  dir: string;
  /** The redis-server process (its pid file is redis.pid in a durable dataDir). */
  pid: number;
  /** Whether the data survives stop() (a dataDir was given). */
  durable: boolean;
  stop(): Promise<void>;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface EmbeddedRedisOptions {
  /** redis-server binary; Debian's by default. */
  binary?: string;
  /** Give up when the server is not accepting connections after this long. */
  startTimeoutMs?: number;
  /** Keep the data here (append-only, fsync every second) instead of a temporary folder. */
  dataDir?: string;
  /** Listen on this port (a Redis started again where its clients expect it); default: a free one. */
  port?: number;
  /** The address to listen on (default 127.0.0.1), e.g. one other network namespaces can reach. */
  host?: string;
}

// $1: redis-server binary, $2: folder to remove once redis has exited ('' for none), then its
// arguments. Prints redis's pid, then waits for redis to exit or stdin (our pipe) to close.
const WATCHER = `
bin=$1; temp=$2; shift 2
exec 3<&0
"$bin" "$@" </dev/null >/dev/null & redis=$!
cat <&3 >/dev/null & watcher=$!
exec 3<&- 0</dev/null
echo "$redis"
wait -n "$redis" "$watcher"
kill -TERM "$redis" "$watcher" 2>/dev/null
wait "$redis"; code=$?
if [ -n "$temp" ]; then rm -rf -- "$temp"; fi
exit $code
`;

/** The redis-server arguments for a port and a folder. */
function redisArgs(host: string, port: number, dir: string, durable: boolean): string[] {
  const common = ['--port', String(port), '--bind', host, '--dir', dir, '--daemonize', 'no', '--save', ''];
  // Redis refuses clients from other hosts while it has no password (protected mode); a Redis told
  // to listen beyond loopback is meant for them (a private network the caller chose).
  if (!host.startsWith('127.')) common.push('--protected-mode', 'no');
  if (!durable) return [...common, '--appendonly', 'no'];
  return [
    ...common,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--appenddirname',
    'appendonly',
    '--pidfile',
    join(dir, 'redis.pid'),
    '--logfile',
    join(dir, 'redis.log'),
  ];
}

export async function startEmbeddedRedis(options: EmbeddedRedisOptions = {}): Promise<EmbeddedRedis> {
  const host = options.host ?? '127.0.0.1';
  const durable = options.dataDir !== undefined;
  const dir = durable ? resolve(options.dataDir!) : await mkdtemp(join(tmpdir(), 'longctx-redis-'));
  if (durable) await mkdir(dir, { recursive: true });
  const removeTemp = () => (durable ? Promise.resolve() : rm(dir, { recursive: true, force: true }));
  const binary = options.binary ?? 'redis-server';
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  // A port can be taken between freePort() and redis binding it: try a few (a given port once).
  for (let attempt = 0; attempt < (options.port === undefined ? 5 : 1); attempt++) {
    const port = options.port ?? (await freePort());
    const child: ChildProcess = spawn(
      'bash',
      ['-c', WATCHER, 'longctx-redis', binary, durable ? '' : dir, ...redisArgs(host, port, dir, durable)],
      { stdio: ['pipe', 'pipe', 'pipe'], detached: true },
    );
    let stderr = '';
    let stdout = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    // The pipe is the watcher's lifeline: never let a write error (EPIPE after it exits) throw.
    child.stdin?.on('error', () => undefined);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };

    while (Date.now() < deadline) {
      if (spawnError) {
        await removeTemp();
        throw new Error(`cannot start bash for ${binary}: ${spawnError.message}`);
      }
      if (child.exitCode !== null) break;
      const pid = Number.parseInt(stdout, 10);
      if (pid > 0 && (await canConnect(host, port))) {
        const stop = async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.stdin?.end(); // the watcher stops redis, waits for it, removes a temporary folder
            const timer = setTimeout(killGroup, 5000);
            await exited;
            clearTimeout(timer);
          }
          await removeTemp();
        };
        return { host, port, url: `redis://${host}:${port}`, dir, pid, durable, stop };
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    if (child.exitCode === null) {
      killGroup();
      await exited;
      await removeTemp();
      throw new Error(`redis-server on port ${port} did not accept connections in time: ${stderr.trim()}`);
    }
    await exited;
    if (/not found|No such file/.test(stderr) && !/Address already in use/.test(stderr + logTail(dir))) {
      await removeTemp();
      throw new Error(`cannot start ${binary}: ${stderr.trim()} (install redis-server: 'make setup')`);
    }
    if (durable && !/Address already in use/.test(logTail(dir))) {
      throw new Error(`redis-server for ${dir} exited at start: ${logTail(dir) || stderr.trim()}`);
    }
  }
  await removeTemp();
  if (options.port !== undefined) throw new Error(`could not start redis-server on port ${options.port}`);
  throw new Error('could not start redis-server on a free port after 5 attempts');
}

/** The end of a durable Redis's log (why it exited). */
function logTail(dir: string): string {
  try {
    return readFileSync(join(dir, 'redis.log'), 'utf8').trim().split('\n').slice(-3).join('\n');
  } catch {
    return '';
  }
}
