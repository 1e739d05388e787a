// Runs a real gang of worker processes (worker-native/host/worker-main.ts) the way the node agent
// does — one process per rank with its RankLaunch in the environment — but directly, so the
// trainer, data, checkpoint and resume paths can be tested without the control plane. Every
// process is killed when the test ends.
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { rankLaunchEnv, rendezvousPrefix, type RankLaunch } from '../../core/rank-launch.js';
import type { JobSpec } from '../../core/job-spec.js';
import { repoRoot } from '../../core/repo-root.js';
import type { StepRecord } from '../../worker-native/host/training-loop.js';

export interface GangOptions {
  spec: JobSpec;
  jobId: string;
  attempt: number;
  world: number;
  runDir: string;
  redisUrl: string;
  deviceBudgetBytes?: number;
  resume?: { step: number; dir: string };
  stopAfterStep?: number;
}

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export type StepLine = StepRecord & { attempt: number };

const workerMain = join(repoRoot, 'dist/worker-native/host/worker-main.js');

export async function runGang(t: ExecutionContext, o: GangOptions): Promise<RankExit[]> {
  await mkdir(join(o.runDir, 'checkpoints'), { recursive: true });
  const specFile = join(o.runDir, `spec-attempt-${o.attempt}.json`);
  await writeFile(specFile, JSON.stringify({ ...o.spec, devices: o.world }));
  const children = Array.from({ length: o.world }, (_, rank) => {
    const launch: RankLaunch = {
      jobId: o.jobId,
      jobName: o.spec.name,
      attempt: o.attempt,
      rank,
      worldSize: o.world,
      node: 'test',
      deviceKind: 'cpu',
      deviceIndex: rank,
      deviceBudgetBytes: o.deviceBudgetBytes ?? 512 * 2 ** 20,
      threads: 1,
      rendezvous: {
        redisUrl: o.redisUrl,
        prefix: rendezvousPrefix(o.jobId, o.attempt),
        bindHost: '127.0.0.1',
      },
      telemetry: { address: '', token: '' },
      runDir: o.runDir,
      checkpointsDir: join(o.runDir, 'checkpoints'),
      specFile,
      ...(o.resume ? { resume: o.resume } : {}),
      agentPid: process.pid,
    };
    const env: NodeJS.ProcessEnv = { ...process.env, ...rankLaunchEnv(launch) };
    delete env.LONGCTX_TELEMETRY_ADDRESS;
    if (o.stopAfterStep !== undefined) env.LONGCTX_STOP_AFTER_STEP = String(o.stopAfterStep);
    const child = spawn(process.execPath, [workerMain], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exit = new Promise<RankExit>((resolve) =>
      child.once('close', (code, signal) => resolve({ rank, code, signal, stdout, stderr })),
    );
    return { child, exit };
  });
  t.teardown(() => {
    for (const { child } of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return Promise.all(children.map((c) => c.exit));
}

/** Fails the test with every rank's output when any rank did not exit 0. */
export function expectSuccess(t: ExecutionContext, exits: RankExit[]): void {
  for (const e of exits) {
    if (e.code !== 0)
      t.fail(`rank ${e.rank} exited with ${e.code ?? e.signal}:\n${e.stderr}\n${e.stdout.slice(-2000)}`);
  }
}

/** The step records a rank wrote (rank-R.steps.jsonl), every attempt, in order. */
export async function stepLog(runDir: string, rank = 0): Promise<StepLine[]> {
  const text = await readFile(join(runDir, 'logs', `rank-${rank}.steps.jsonl`), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as StepLine);
}
