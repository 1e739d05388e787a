// The CLI as a user runs it: `node dist/orchestrator/cli/main.js …` in a child process, and a
// `longctx server` child that the tests start, read the addresses from, and stop with SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import { repoRoot } from '../../core/repo-root.js';

export const CLI_MAIN = join(repoRoot, 'dist', 'orchestrator', 'cli', 'main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (killed after `timeoutMs`, which fails the caller's assertions). */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, LONGCTX_SERVER: '', LONGCTX_TOKEN: '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

/** Parses --json output, failing with the output in the message when it is not JSON. */
export function parseJson<T>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

export interface CliServer {
  grpcAddress: string;
  httpUrl: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then the exit code (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | null>;
}

/** Starts `longctx server …` and waits for it to say it is ready. */
export async function startCliServer(args: string[], timeoutMs = 60_000): Promise<CliServer> {
  const child = spawn(process.execPath, [CLI_MAIN, 'server', ...args], {
    cwd: repoRoot,
    env: { ...process.env, LONGCTX_REDIS_URL: '', LONGCTX_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (graceMs = 30_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    }
    return child.exitCode;
  };
  const deadline = Date.now() + timeoutMs;
  while (!/^ready: /m.test(output)) {
    if (child.exitCode !== null) throw new Error(`longctx server exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      await stop(1000);
      throw new Error(`longctx server was not ready within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const grpc = /gRPC (\S+?),? /.exec(output)?.[1];
  const http = /dashboard: (\S+)/.exec(output)?.[1];
  if (!grpc || !http) {
    await stop(1000);
    throw new Error(`cannot read the server's addresses from:\n${output}`);
  }
  return { grpcAddress: grpc, httpUrl: http, child, output: () => output, stop };
}
