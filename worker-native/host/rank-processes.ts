// One node process per rank, as the comm tests and the comm demo start them. A rank reports JSON
// lines on stdout; it exits when its stdin closes, so no rank outlives the process that started it,
// even one that was killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export type RankMessage = Record<string, unknown>;

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  messages: RankMessage[];
  stderr: string;
}

export interface RankGroupOptions {
  /** Compiled script every rank runs with `node`. */
  script: string;
  ranks: readonly number[];
  args: (rank: number) => string[];
  env?: NodeJS.ProcessEnv;
  /** Options for node itself, e.g. ['--expose-gc']. */
  nodeOptions?: string[];
}

interface RankState {
  child: ChildProcess;
  messages: RankMessage[];
  stderr: string;
  exit: Promise<RankExit>;
  waiters: Array<() => void>;
}

/** The processes of one group of ranks, from start to exit. */
export class RankGroup {
  private readonly states = new Map<number, RankState>();

  constructor(options: RankGroupOptions) {
    for (const rank of options.ranks) {
      const child = spawn(
        process.execPath,
        [...(options.nodeOptions ?? []), options.script, ...options.args(rank)],
        {
          stdio: ['pipe', 'pipe', 'pipe'],
          env: options.env ?? process.env,
        },
      );
      let resolveExit!: (exit: RankExit) => void;
      const exit = new Promise<RankExit>((resolve) => (resolveExit = resolve));
      const state: RankState = { child, messages: [], stderr: '', exit, waiters: [] };
      const notify = () => state.waiters.splice(0).forEach((wake) => wake());
      createInterface({ input: child.stdout }).on('line', (line) => {
        state.messages.push(parseLine(line));
        notify();
      });
      child.stderr.on('data', (chunk: Buffer) => (state.stderr += chunk.toString()));
      // A rank that exits early closes its stdin; we never write to it, so only EPIPE can come.
      child.stdin.on('error', () => {});
      child.once('error', (error) => (state.stderr += `cannot start: ${error.message}\n`));
      child.once('close', (code, signal) => {
        notify();
        resolveExit({ rank, code, signal, messages: state.messages, stderr: state.stderr });
      });
      this.states.set(rank, state);
    }
  }

  private state(rank: number): RankState {
    const state = this.states.get(rank);
    if (!state) throw new RangeError(`rank ${rank} is not in this group`);
    return state;
  }

  /** The first message of `rank` that matches (earlier ones count); rejects when the rank exits first. */
  async message(rank: number, match: (message: RankMessage) => boolean): Promise<RankMessage> {
    const state = this.state(rank);
    for (;;) {
      const found = state.messages.find(match);
      if (found) return found;
      if (state.child.exitCode !== null || state.child.signalCode !== null) {
        throw new Error(
          `rank ${rank} exited (${state.child.exitCode ?? state.child.signalCode}) without the expected message; ` +
            `stderr: ${state.stderr.trim() || '(empty)'}`,
        );
      }
      await new Promise<void>((wake) => state.waiters.push(wake));
    }
  }

  /** Resolves when the rank has exited. */
  exit(rank: number): Promise<RankExit> {
    return this.state(rank).exit;
  }

  /** Resolves when every rank has exited, in the order the ranks were given. */
  exited(): Promise<RankExit[]> {
    return Promise.all([...this.states.values()].map((s) => s.exit));
  }

  kill(rank: number, signal: NodeJS.Signals = 'SIGKILL'): void {
    const { child } = this.state(rank);
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  }

  /** Kills every rank still running and waits until all have exited. Safe to call more than once. */
  async stop(): Promise<void> {
    for (const rank of this.states.keys()) this.kill(rank);
    await this.exited();
  }
}

function parseLine(line: string): RankMessage {
  try {
    const value: unknown = JSON.parse(line);
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as RankMessage;
  } catch {
    // not JSON: kept as text below
  }
  return { text: line };
}

// --- inside a rank process ---------------------------------------------------------------------------

/**
 * Ends this process when the parent goes away (its end of our stdin closes). Not process.exit():
 * that waits for the libuv pool to drain, and a rendezvous running there would hold this orphan
 * until its timeout. Nobody is left to report to, so nothing is lost.
 */
export function exitWithParent(): void {
  const die = () => process.kill(process.pid, 'SIGKILL');
  process.stdin.on('end', die);
  process.stdin.on('error', die);
  process.stdin.resume();
}

/** Sends one message to the parent. */
export function report(message: RankMessage): void {
  process.stdout.write(JSON.stringify(message) + '\n');
}

/** Ends a rank: exitWithParent keeps the event loop alive, so ranks leave explicitly. */
export function finish(code: number): void {
  // Exit only once stdout has drained: a pipe is written asynchronously, and exiting at once can
  // cut a long last report short.
  process.stdout.write('', () => process.exit(code));
}
