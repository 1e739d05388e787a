// A private redis-server: the embedded default when no Redis URL is configured, and what every
// test starts for itself. It listens on 127.0.0.1 on a free port, keeps its files in its own
// temporary folder, and is gone (process and folder) after stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EmbeddedRedis {
  host: string;
  port: number;
  url: string;
  dir: string;
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
}

export async function startEmbeddedRedis(options: EmbeddedRedisOptions = {}): Promise<EmbeddedRedis> {
  const host = '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'longctx-redis-'));
  const binary = options.binary ?? 'redis-server';
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  // A port can be taken between freePort() and redis binding it: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(
      binary,
      [
        '--port',
        String(port),
        '--bind',
        host,
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], detached: false },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));

    while (Date.now() < deadline) {
      if (spawnError) {
        await rm(dir, { recursive: true, force: true });
        throw new Error(`cannot start ${binary}: ${spawnError.message} (install redis-server: 'make setup')`);
      }
      if (child.exitCode !== null) break;
      if (await canConnect(host, port)) {
        const stop = async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
            await exited;
            clearTimeout(timer);
          }
          await rm(dir, { recursive: true, force: true });
        };
        return { host, port, url: `redis://${host}:${port}`, dir, stop };
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`redis-server on port ${port} did not accept connections in time: ${stderr.trim()}`);
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error('could not start redis-server on a free port after 5 attempts');
}
