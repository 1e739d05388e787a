// The state folder of a run folder (runs/.state/) and the lock that gives it to one server.
// The embedded Redis keeps its append-only file in <state>/redis, so a server started again on the
// same runs folder finds every job as it was; two servers on one folder would corrupt that, so the
// first one writes <state>/server.json (created exclusively) and every other one refuses.
//
// The record names the holder by pid and process start time: a server killed with SIGKILL leaves
// its record behind, and the next one sees the holder is gone (a reused pid has another start
// time), stops what is left of the dead server's Redis, and takes the folder over. The record also
// says where the server listens, so `longctx server stop` can find it.
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { processAlive, processStartTime } from '../../cluster/process-groups.js';

export const STATE_FOLDER = '.state';
const RECORD_FILE = 'server.json';

/** runs/.state: where a server keeps its Redis data and its lock. */
export function stateDirOf(runsDir: string): string {
  return join(resolve(runsDir), STATE_FOLDER);
}

/** A process named for good: its pid and when it started. */
export interface ProcessRef {
  pid: number;
  startTime?: number;
}

export interface ServerRecord extends ProcessRef {
  startedAt: string;
  runsDir: string;
  grpcAddress?: string;
  httpUrl?: string;
  redis?: ProcessRef & { url: string };
  /** The server's own node agent: its lease can be taken over at once when this server is dead. */
  agent?: { id: string; node: string };
}

function ref(pid: number): ProcessRef {
  const startTime = processStartTime(pid);
  return startTime === undefined ? { pid } : { pid, startTime };
}

/** Whether the process a record names still runs (not a later process with the same pid). */
export function isRunning(process: ProcessRef): boolean {
  if (!processAlive(process.pid)) return false;
  return process.startTime === undefined || processStartTime(process.pid) === process.startTime;
}

/** The record in a state folder; undefined when there is none (or it cannot be read as one). */
export function readServerRecord(stateDir: string): ServerRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(join(stateDir, RECORD_FILE), 'utf8')) as ServerRecord;
    return typeof record.pid === 'number' ? record : undefined;
  } catch {
    return undefined;
  }
}

export class StateFolderLockedError extends Error {
  constructor(
    readonly stateDir: string,
    readonly holder: ServerRecord,
  ) {
    super(
      `another longctx server (pid ${holder.pid}${holder.grpcAddress ? `, gRPC ${holder.grpcAddress}` : ''}) ` +
        `is using ${stateDir}: stop it first ('longctx server stop --runs ${holder.runsDir}') or use another --runs folder`,
    );
  }
}

export class ServerLock {
  private record: ServerRecord;
  private released = false;
  private readonly onExit = () => this.releaseSync();

  private constructor(
    readonly stateDir: string,
    record: ServerRecord,
    /** The record of a dead server this one took the folder over from. */
    readonly previous: ServerRecord | undefined,
  ) {
    this.record = record;
    process.on('exit', this.onExit);
  }

  /**
   * Takes the state folder of `runsDir` for this process. Refuses (StateFolderLockedError) while
   * another live server holds it; a dead holder's leftover Redis is stopped first.
   */
  static async acquire(runsDir: string, log: (line: string) => void = () => undefined): Promise<ServerLock> {
    const stateDir = stateDirOf(runsDir);
    await mkdir(stateDir, { recursive: true });
    const path = join(stateDir, RECORD_FILE);
    const mine: ServerRecord = {
      ...ref(process.pid),
      startedAt: new Date().toISOString(),
      runsDir: resolve(runsDir),
    };
    let previous: ServerRecord | undefined;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        try {
          writeSync(fd, JSON.stringify(mine, null, 2) + '\n');
        } finally {
          closeSync(fd);
        }
        return new ServerLock(stateDir, mine, previous);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const raw = readText(path);
      const holder = readServerRecord(stateDir);
      if (!holder) {
        // Created but not yet written by a server starting right now, or garbage: wait a moment.
        if (attempt < 10) {
          await sleep(100);
          continue;
        }
      } else if (isRunning(holder)) {
        throw new StateFolderLockedError(stateDir, holder);
      } else {
        log(`the previous server (pid ${holder.pid}) of ${stateDir} is gone: taking its state over`);
        if (holder.redis && isRunning(holder.redis)) await stopProcess(holder.redis, 5000, log);
        previous = holder;
      }
      // Remove the stale record only if it is still the one judged stale.
      if (readText(path) === raw) unlinkIfPresent(path);
    }
    throw new Error(`could not take ${path}: it keeps changing (is another server starting?)`);
  }

  /** Adds where this server listens (and its Redis and agent) to the record. */
  update(fields: Partial<Omit<ServerRecord, 'pid' | 'startTime' | 'startedAt' | 'runsDir'>>): void {
    if (this.released) return;
    this.record = { ...this.record, ...fields };
    const path = join(this.stateDir, RECORD_FILE);
    const temp = `${path}.${process.pid}.tmp`;
    const fd = openSync(temp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(this.record, null, 2) + '\n');
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  }

  /** A reference to a process for the record (pid and start time). */
  static processRef(pid: number): ProcessRef {
    return ref(pid);
  }

  release(): void {
    this.releaseSync();
  }

  private releaseSync(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    const path = join(this.stateDir, RECORD_FILE);
    const current = readServerRecord(this.stateDir);
    if (current && current.pid === this.record.pid && current.startTime === this.record.startTime)
      unlinkIfPresent(path);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(
  target: ProcessRef,
  graceMs: number,
  log: (line: string) => void = () => undefined,
): Promise<boolean> {
  if (!isRunning(target)) return true;
  try {
    process.kill(target.pid, 'SIGTERM');
  } catch {
    return true;
  }
  const deadline = Date.now() + graceMs;
  while (isRunning(target) && Date.now() < deadline) await sleep(50);
  if (isRunning(target)) {
    log(`pid ${target.pid} did not stop in ${graceMs} ms: SIGKILL`);
    try {
      process.kill(target.pid, 'SIGKILL');
    } catch {
      // gone
    }
    const killDeadline = Date.now() + 5000;
    while (isRunning(target) && Date.now() < killDeadline) await sleep(20);
  }
  return !isRunning(target);
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
