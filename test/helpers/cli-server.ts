// The real `longctx server` in its own process (as an operator starts it), and the Control client
// that talks to it: for the tests and the chaos run that kill the server outright.
import { spawn, type ChildProcess } from 'node:child_process';
import { makeGenericClientConstructor, Metadata, type Client } from '@grpc/grpc-js';
import { join } from 'node:path';

import { repoRoot } from '../../core/repo-root.js';
import { readServerRecord, stateDirOf, type ServerRecord } from '../../orchestrator/state/server-lock.js';
import { controlService } from '../../proto/services.js';

export const ControlClient = makeGenericClientConstructor(controlService, 'Control');

/** One unary Control call (the generic client has no typed methods); metadata e.g. the admin token. */
export function unary<Req, Res>(
  client: Client,
  method: string,
  request: Req,
  metadata: Metadata = new Metadata(),
): Promise<Res> {
  return new Promise((resolve, reject) =>
    (
      client as unknown as Record<
        string,
        (r: Req, m: Metadata, cb: (e: Error | null, r: Res) => void) => void
      >
    )[method]!(request, metadata, (e, r) => (e ? reject(e) : resolve(r))),
  );
}

/** Polls until `what` gives a value, or fails naming `describe`. */
export async function until<T>(
  what: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  describe: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await what();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${describe}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface CliServer {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * `longctx server --runs DIR --port 0 --no-http` with its own embedded, durable Redis (never the
 * caller's $LONGCTX_REDIS_URL) and the given extra arguments (e.g. --devices 8).
 */
export function spawnCliServer(runsDir: string, extraArgs: string[]): CliServer {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'dist/orchestrator/cli/main.js'),
      'server',
      '--runs',
      runsDir,
      '--port',
      '0',
      '--no-http',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LONGCTX_REDIS_URL: '' } },
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Resolves once the server's record in DIR/.state names it and its gRPC address. */
export function cliServerReady(
  server: CliServer,
  runsDir: string,
  timeoutMs = 60_000,
): Promise<ServerRecord> {
  return until(
    () => {
      if (server.child.exitCode !== null) throw new Error(`the server exited: ${server.output()}`);
      const record = readServerRecord(stateDirOf(runsDir));
      return record &&
        record.pid === server.child.pid &&
        record.grpcAddress &&
        server.output().includes('ready:')
        ? record
        : undefined;
    },
    timeoutMs,
    'the server to be ready',
  );
}
