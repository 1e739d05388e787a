// Stopping leaves nothing behind, however the server goes: the real `longctx server` CLI in its
// own process, stopped by SIGHUP (a closed terminal), killed with SIGKILL, or killed together
// with its Redis watcher so that its redis-server is left running — the next server on the
// folder stops that one before it starts its own. A temporary embedded Redis (the tests' kind)
// goes with the process that started it, folder included.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import {
  isRunning,
  readServerRecord,
  stateDirOf,
  type ServerRecord,
} from '../../orchestrator/state/server-lock.js';
import { repoRoot } from '../../core/repo-root.js';

const CLI = join(repoRoot, 'dist/orchestrator/cli/main.js');
const children: ChildProcess[] = [];
test.after.always(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

async function until<T>(what: () => T | undefined, timeoutMs: number, describe: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = what();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${describe}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function server(runsDir: string) {
  const child = spawn(
    process.execPath,
    [CLI, 'server', '--runs', runsDir, '--port', '0', '--no-http', '--no-agent'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LONGCTX_REDIS_URL: '' },
    },
  );
  children.push(child);
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = until(
    () => {
      if (child.exitCode !== null) throw new Error(`the server exited: ${output}`);
      const record = readServerRecord(stateDirOf(runsDir));
      return record && record.pid === child.pid && record.grpcAddress ? record : undefined;
    },
    30_000,
    'the server to be ready',
  );
  return { child, exited, ready, output: () => output };
}

const gone = (p: { pid: number; startTime?: number }, what: string) =>
  until(() => (isRunning(p) ? undefined : true), 10_000, `${what} (pid ${p.pid}) to exit`);

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

async function runsDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'longctx-lifecycle-'));
  t.teardown(() => rm(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}

test.serial('SIGHUP stops the server cleanly: its Redis goes with it, the lock is released', async (t) => {
  const dir = await runsDir(t);
  const s = server(dir);
  const record: ServerRecord = await s.ready;
  s.child.kill('SIGHUP');
  t.is(await s.exited, 0, s.output());
  await gone(record.redis!, 'its redis-server');
  t.is(readServerRecord(stateDirOf(dir)), undefined);
});

test.serial(
  'SIGKILL of the server: its Redis stops by itself; the next server takes the folder over',
  async (t) => {
    const dir = await runsDir(t);
    const first = server(dir);
    const record = await first.ready;
    first.child.kill('SIGKILL');
    await first.exited;
    await gone(record.redis!, 'the orphaned redis-server');
    const second = server(dir);
    await second.ready;
    t.regex(second.output(), new RegExp(`the previous server \\(pid ${record.pid}\\) of .* is gone`));
    second.child.kill('SIGTERM');
    t.is(await second.exited, 0);
  },
);

test.serial(
  'server and Redis watcher both killed: the next server stops the leftover redis-server',
  async (t) => {
    const dir = await runsDir(t);
    const first = server(dir);
    const record = await first.ready;
    const watcher = parentOf(record.redis!.pid);
    process.kill(watcher, 'SIGKILL');
    first.child.kill('SIGKILL');
    await first.exited;
    await new Promise((r) => setTimeout(r, 500));
    t.true(isRunning(record.redis!), 'with its watcher gone, the redis-server outlives the server');
    const second = server(dir);
    const next = await second.ready;
    t.false(isRunning(record.redis!), 'the new server stopped it before starting its own');
    t.not(next.redis!.pid, record.redis!.pid);
    const stop = spawn(process.execPath, [CLI, 'server', 'stop', '--runs', dir], { stdio: 'ignore' });
    t.is(await new Promise((r) => stop.once('exit', r)), 0);
    t.is(await second.exited, 0);
    await gone(next.redis!, 'its redis-server');
  },
);

test('a temporary embedded Redis goes with the process that started it, folder included', async (t) => {
  const script = `
    import { startEmbeddedRedis } from ${JSON.stringify(join(repoRoot, 'dist/cluster/embedded-redis.js'))};
    const r = await startEmbeddedRedis();
    console.log(JSON.stringify({ pid: r.pid, dir: r.dir }));
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const started = await until(
    () => (out.includes('\n') ? (JSON.parse(out) as { pid: number; dir: string }) : undefined),
    15_000,
    'the Redis to start',
  );
  t.true(existsSync(started.dir));
  child.kill('SIGKILL');
  await gone({ pid: started.pid }, 'the redis-server');
  await until(() => (existsSync(started.dir) ? undefined : true), 5000, 'its folder to be removed');
  t.pass();
});
