// A job's run folder, runs/<job>/ (logs/rank-<r>.log, checkpoints/step-…): where the CLI reads
// logs and checkpoints from, on the machine that ran the job.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { CliError, ExitCode } from './exit-codes.js';

/** Job ids are names, numbers and hex (queue/job-queue.ts): never a path. */
const JOB_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function runFolder(runsDir: string, jobId: string): string {
  if (!JOB_ID.test(jobId))
    throw new CliError(ExitCode.USAGE, `'${jobId}' is not a job id: 'longctx ls' lists the jobs`);
  const dir = join(runsDir, jobId);
  if (!existsSync(dir))
    throw new CliError(
      ExitCode.NOT_FOUND,
      `no run folder for ${jobId} in ${runsDir}: the job has not started yet, or its runs are elsewhere (--runs or LONGCTX_RUNS)`,
    );
  return dir;
}

/** Ranks that have a log file, in rank order. */
export async function loggedRanks(runDir: string): Promise<number[]> {
  const names = await readdir(join(runDir, 'logs')).catch(() => [] as string[]);
  return names
    .map((n) => /^rank-(\d+)\.log$/.exec(n))
    .filter((m) => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export function rankLogPath(runDir: string, rank: number): string {
  return join(runDir, 'logs', `rank-${rank}.log`);
}
