// A job's run folder and the job-id rule: the node agent writes runs/<job>/, the worker writes its
// logs and checkpoints there, the server and the CLI read them. One layout, so they all agree.
import { join } from 'node:path';

/**
 * Job ids are `<spec name>-<sequence>-<hex>` (control/job-queue.ts) and spec names start with a
 * letter or digit: letters, digits, '.', '_' and '-', never a path. Rendezvous keys and folder
 * names are built from them, so every process checks ids with this one rule.
 */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function isJobId(id: string): boolean {
  return JOB_ID_PATTERN.test(id);
}

/** Throws a TypeError naming the rule when `id` is not a job id. */
export function checkJobId(id: string): void {
  if (!isJobId(id))
    throw new TypeError(
      `job must be letters, digits, '.', '_' or '-' (not starting with one of the last three), got '${id}'`,
    );
}

/** Where everything of one job lives: runs/<job>/… */
export interface RunFolder {
  dir: string;
  /** rank-<r>.log (the rank's output) and rank-<r>.steps.jsonl (one line per step). */
  logsDir: string;
  /** step-NNNNNNNN/ folders (checkpoints/manifest.ts). */
  checkpointsDir: string;
  /** The validated JobSpec as JSON: what the ranks read. */
  specJson: string;
  /** The YAML the user submitted. */
  specYaml: string;
}

export function runFolder(runsDir: string, jobId: string): RunFolder {
  checkJobId(jobId);
  const dir = join(runsDir, jobId);
  return {
    dir,
    logsDir: join(dir, 'logs'),
    checkpointsDir: join(dir, 'checkpoints'),
    specJson: join(dir, 'spec.json'),
    specYaml: join(dir, 'spec.yaml'),
  };
}

/** The launch files of one attempt (one JSON RankLaunch per rank, launchFileName). */
export function attemptDir(runDir: string, attempt: number): string {
  return join(runDir, `attempt-${attempt}`);
}

export function launchFileName(rank: number): string {
  return `rank-${rank}.json`;
}

export function rankLogFileName(rank: number): string {
  return `rank-${rank}.log`;
}

export function rankLogPath(runDir: string, rank: number): string {
  return join(runDir, 'logs', rankLogFileName(rank));
}

export function rankStepsLogPath(runDir: string, rank: number): string {
  return join(runDir, 'logs', `rank-${rank}.steps.jsonl`);
}

/** The rank of a log file name ('rank-3.log' → 3); undefined for other files. */
export function rankOfLogName(name: string): number | undefined {
  const m = /^rank-(\d+)\.log$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
