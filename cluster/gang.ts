// A gang: the ranks of one job attempt on one node, started together and stopped together. Ranks
// of a ring cannot make progress without each other, so when one exits non-zero or is killed, or
// someone (the watchdog, a cancel, the agent shutting down) stops the gang, every rank is
// stopped: SIGTERM to each rank's process group, SIGKILL after a grace period. Each rank leads
// its own process group, so whatever a rank started goes with it, and the gang is over only when
// no live process is left in any of its groups. A rank's stdout and stderr go to
// <logDir>/rank-<r>.log, appended across attempts.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync, fstatSync, writeSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { groupAlive, killGroupsNow, terminateGroups } from './process-groups.js';
import { rankLaunchEnv, type RankLaunch } from '../core/rank-launch.js';
import { launchFileName, rankLogFileName } from '../core/run-folder.js';

export interface GangOptions {
  /** The worker command line (program and arguments); each rank runs it once. */
  command: string[];
  cwd?: string;
  /** Base environment of every rank (the LONGCTX_* variables are added to it). */
  env?: NodeJS.ProcessEnv;
  /** Where rank-<r>.log go. */
  logDir: string;
  /** Where rank-<r>.json (the launch as JSON) go. */
  launchDir: string;
  /** Time between SIGTERM and SIGKILL. */
  graceMs: number;
}

export type GangResult =
  | { kind: 'succeeded' }
  | {
      kind: 'failed';
      rank: number;
      exitCode: number | null;
      signal: NodeJS.Signals | null;
      message: string;
    }
  | { kind: 'stopped'; reason: string };

export interface RankProcess {
  rank: number;
  pid: number;
  /** The rank's process group (it leads it: pgid = pid). */
  pgid: number;
  logFile: string;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
}

export class Gang {
  readonly ranks: RankProcess[] = [];
  /** Settles once every rank has exited and no process of any rank's group is left. */
  readonly done: Promise<GangResult>;
  private ending?: GangResult;
  private settle!: (result: GangResult) => void;
  private fail!: (err: Error) => void;
  private terminating: Promise<void> = Promise.resolve();
  private readonly exited: Promise<void>[] = [];

  private constructor(private readonly options: GangOptions) {
    this.done = new Promise((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
  }

  /**
   * Starts one process per launch (in rank order). If any cannot start, the ones already started
   * are stopped and the error names the rank and the command.
   */
  static async launch(launches: RankLaunch[], options: GangOptions): Promise<Gang> {
    const gang = new Gang(options);
    await mkdir(options.logDir, { recursive: true });
    await mkdir(options.launchDir, { recursive: true });
    try {
      for (const launch of launches) {
        await gang.startRank(launch);
        if (gang.ending) break; // a rank already failed: start no more
      }
    } catch (err) {
      gang.ending = { kind: 'stopped', reason: (err as Error).message };
      await gang.terminate().catch(() => undefined);
      throw err;
    }
    void gang.supervise();
    return gang;
  }

  private async startRank(launch: RankLaunch): Promise<void> {
    const [program, ...args] = this.options.command;
    if (!program) throw new Error('worker command: empty');
    const launchFile = join(this.options.launchDir, launchFileName(launch.rank));
    await writeFile(launchFile, JSON.stringify(launch, null, 2) + '\n', { mode: 0o600 }); // holds the token
    const logFile = join(this.options.logDir, rankLogFileName(launch.rank));
    const log = openSync(logFile, 'a');
    writeSync(
      log,
      `=== ${new Date().toISOString()} job ${launch.jobId} attempt ${launch.attempt} rank ${launch.rank}/${launch.worldSize} on ${launch.node} device ${launch.deviceIndex}: ${this.options.command.join(' ')}\n`,
    );
    let child: ChildProcess;
    try {
      child = spawn(program, args, {
        cwd: this.options.cwd,
        env: { ...(this.options.env ?? process.env), ...rankLaunchEnv(launch, launchFile) },
        stdio: ['ignore', log, log],
        detached: true, // setsid: the rank leads a new process group
      });
    } finally {
      closeSync(log); // the child has its own copy of the descriptor
    }
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) =>
        reject(
          new Error(`rank ${launch.rank}: cannot start '${this.options.command.join(' ')}': ${err.message}`),
        ),
      );
    });
    const rank: RankProcess = { rank: launch.rank, pid: child.pid!, pgid: child.pid!, logFile };
    this.ranks.push(rank);
    // A rank that failed while this one was starting has already begun stopping the others.
    if (this.ending) this.terminate().catch(() => undefined);
    this.exited.push(
      new Promise((resolve) =>
        child.once('exit', (code, signal) => {
          rank.exitCode = code;
          rank.signal = signal;
          if ((code !== 0 || signal !== null) && !this.ending) {
            const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
            const tail = lastLogLine(logFile);
            this.ending = {
              kind: 'failed',
              rank: rank.rank,
              exitCode: code,
              signal,
              message: `rank ${rank.rank} ${why}${tail ? `: ${tail}` : ''}`,
            };
            this.terminate().catch(() => undefined); // supervise() reports a failed cleanup
          }
          resolve();
        }),
      ),
    );
  }

  /** Waits for every rank, then clears what ranks left behind, then settles `done`. */
  private async supervise(): Promise<void> {
    await Promise.all(this.exited);
    try {
      await this.terminate(); // ranks that exited 0 may have left processes in their groups
    } catch (err) {
      this.fail(err as Error); // a process survived SIGKILL (stuck in the kernel): say so
      return;
    }
    this.settle(this.ending ?? { kind: 'succeeded' });
  }

  /** Terminates every group started so far; calls queue up, each covering the groups of its time. */
  private terminate(graceMs = this.options.graceMs): Promise<void> {
    const run = () => terminateGroups(this.pgids(), graceMs).then(() => undefined);
    this.terminating = this.terminating.then(run, run);
    return this.terminating;
  }

  /**
   * Stops every rank (idempotent); resolves with how the gang ended. `immediate` skips the grace
   * period: a hung gang will not use it to checkpoint, and a stopped (SIGSTOP) process only
   * yields to SIGKILL.
   */
  async stop(reason: string, options: { immediate?: boolean } = {}): Promise<GangResult> {
    if (!this.ending) {
      this.ending = { kind: 'stopped', reason };
      await this.terminate(options.immediate ? 0 : undefined).catch(() => undefined); // supervise() reports a failed cleanup
    }
    return this.done;
  }

  /** Whether the gang is ending or over (a rank failed, or someone stopped it). */
  get stopping(): boolean {
    return this.ending !== undefined;
  }

  pgids(): number[] {
    return this.ranks.map((r) => r.pgid);
  }

  /** Live process groups of the gang (for tests and status). */
  liveGroups(): number[] {
    return this.pgids().filter(groupAlive);
  }

  /** SIGKILL to every group now, synchronously: for a process 'exit' handler. */
  killNow(): void {
    killGroupsNow(this.pgids());
  }
}

/** The last non-empty line of a log (from its final 4 KiB), trimmed to 300 characters. */
function lastLogLine(path: string): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const length = Math.min(size, 4096);
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, size - length);
      const lines = buffer
        .toString('utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('=== '));
      return (lines[lines.length - 1] ?? '').slice(0, 300);
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}
