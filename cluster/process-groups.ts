// Process groups: every rank starts in its own group (spawn detached = setsid), so the agent can
// signal a rank together with everything it started, and check that nothing of it is left. A
// process that has exited but not been reaped (a zombie: its parent may be an init that never
// waits, as in some containers) counts as gone.
import { readdirSync, readFileSync } from 'node:fs';

const HAVE_PROC = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

/** State and process group of a pid from /proc/<pid>/stat; undefined when it is gone. */
function procStat(pid: number): { state: string; pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid pgrp …": comm may contain spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', pgrp: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

/** Whether any process is in the group at all (zombies included): kill(-pgid, 0). */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Live (non-zombie) members of a process group. */
export function groupMembers(pgid: number): number[] {
  if (!groupExists(pgid)) return [];
  if (!HAVE_PROC) return [pgid];
  const members: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = procStat(pid);
    if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') members.push(pid);
  }
  return members;
}

export function groupAlive(pgid: number): boolean {
  return groupMembers(pgid).length > 0;
}

/** Whether a single process is alive (a zombie is not). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = HAVE_PROC ? procStat(pid) : { state: 'R', pgrp: 0 };
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/**
 * When a process started (clock ticks since boot, /proc/<pid>/stat field 22): with the pid it
 * names one process for good, so a record of it is not fooled by a reused pid. undefined when
 * the process is gone or there is no /proc.
 */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const value = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Sends a signal to a whole group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Terminates groups: SIGTERM to each, then SIGKILL to whatever is left after `graceMs`, then
 * waits (up to 5 s more) until no live member remains. Returns the groups that needed SIGKILL.
 */
export async function terminateGroups(pgids: number[], graceMs: number): Promise<number[]> {
  const alive = () => pgids.filter(groupAlive);
  for (const pgid of alive()) signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive().length > 0 && Date.now() < deadline) await sleep(25);
  const stubborn = alive();
  for (const pgid of stubborn) signalGroup(pgid, 'SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (alive().length > 0 && Date.now() < killDeadline) await sleep(10);
  const left = alive();
  if (left.length > 0) {
    throw new Error(`process groups ${left.join(', ')} still have live processes after SIGKILL`);
  }
  return stubborn;
}

/** SIGKILL to every group, synchronously: the last resort from a process 'exit' handler. */
export function killGroupsNow(pgids: number[]): void {
  for (const pgid of pgids) signalGroup(pgid, 'SIGKILL');
}

/**
 * Whether a group still runs a rank of the given job attempt: some live member's environment
 * has LONGCTX_JOB_ID and LONGCTX_ATTEMPT set to them. Guards against killing an unrelated group
 * that reused a dead rank's pgid. Without /proc it cannot tell and answers false.
 */
export function groupRunsAttempt(pgid: number, jobId: string, attempt: number): boolean {
  if (!HAVE_PROC) return false;
  const wanted = [`LONGCTX_JOB_ID=${jobId}`, `LONGCTX_ATTEMPT=${attempt}`];
  for (const pid of groupMembers(pgid)) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (wanted.every((w) => env.includes(w))) return true;
    } catch {
      // gone, or not ours to read: not a rank of this attempt
    }
  }
  return false;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
