// A job's run folder as the CLI reads it (logs, checkpoints), on the machine that ran the job. The
// layout and the job-id rule are core/run-folder.ts's; this adds the CLI's errors and exit codes.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { isJobId, rankOfLogName, runFolder as runFolderOf } from '../../core/run-folder.js';
import { CliError, ExitCode } from './exit-codes.js';

export { rankLogPath } from '../../core/run-folder.js';

export function runFolder(runsDir: string, jobId: string): string {
  if (!isJobId(jobId))
    throw new CliError(ExitCode.USAGE, `'${jobId}' is not a job id: 'longctx ls' lists the jobs`);
  const dir = runFolderOf(runsDir, jobId).dir;
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
    .map(rankOfLogName)
    .filter((r) => r !== undefined)
    .sort((a, b) => a - b);
}
