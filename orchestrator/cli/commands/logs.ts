// `longctx logs JOB [--rank R] [-f]`: the ranks' output, runs/<job>/logs/rank-<r>.log (appended
// across attempts). With -f it keeps printing what is appended until the job ends (asked of the
// server every few seconds; without a server, until Ctrl-C).
import { open } from 'node:fs/promises';

import { CONNECTION_FLAGS, CONNECTION_HELP, type Args } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { ControlClient } from '../control-client.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { jobStateName } from '../format.js';
import { loggedRanks, rankLogPath, runFolder } from '../run-folder.js';

const HELP = `Usage: longctx logs JOB [options]

Prints the ranks' logs of JOB from its run folder (runs/<job>/logs/rank-<r>.log). Without --rank,
every rank's log, each line prefixed with its rank.

Options:
  --rank R                 only rank R's log
  -f, --follow             keep printing new lines until the job ends (or Ctrl-C)
  --runs DIR               the runs folder (default $LONGCTX_RUNS or the repository's runs/)
  --json                   one JSON object per line: {"rank": R, "line": "..."}
${CONNECTION_HELP}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

const POLL_MS = 200;
const STATE_CHECK_MS = 2000;

/** Reads a file from where it was last read, giving back whole lines. */
class LogTail {
  private offset = 0;
  private partial = '';

  constructor(
    readonly rank: number,
    private readonly path: string,
  ) {}

  async read(): Promise<string[]> {
    const handle = await open(this.path, 'r').catch(() => undefined);
    if (!handle) return [];
    try {
      const chunks: Buffer[] = [];
      for (;;) {
        const buffer = Buffer.alloc(64 * 1024);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        chunks.push(buffer.subarray(0, bytesRead));
      }
      const text = this.partial + Buffer.concat(chunks).toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      return lines;
    } finally {
      await handle.close();
    }
  }

  /** A last line without its newline (the rank ended mid-line). */
  rest(): string[] {
    const rest = this.partial;
    this.partial = '';
    return rest ? [rest] : [];
  }
}

async function run(args: Args, io: CliIo): Promise<number> {
  const [jobId] = args.expect('job');
  const only = args.integer('rank', 0);
  const dir = runFolder(args.runsDir(io.env, io.cwd), jobId!);
  const ranks = await loggedRanks(dir);
  if (only !== undefined && !ranks.includes(only) && !args.has('follow'))
    throw new CliError(
      ExitCode.NOT_FOUND,
      `rank ${only} of ${jobId} has no log${ranks.length > 0 ? ` (ranks with logs: ${ranks.join(', ')})` : ' (no rank has started yet)'}`,
    );
  const prefix = only === undefined;
  const tails = new Map<number, LogTail>();
  const print = (tail: LogTail, lines: string[]) => {
    for (const line of lines) {
      if (args.json) io.stdout.write(`${JSON.stringify({ rank: tail.rank, line })}\n`);
      else io.stdout.write(prefix ? `[rank ${tail.rank}] ${line}\n` : `${line}\n`);
    }
  };
  const readAll = async (final: boolean) => {
    const present = only === undefined ? await loggedRanks(dir) : [only];
    for (const rank of present) {
      let tail = tails.get(rank);
      if (!tail) tails.set(rank, (tail = new LogTail(rank, rankLogPath(dir, rank))));
      print(tail, await tail.read());
      if (final) print(tail, tail.rest());
    }
  };
  if (!args.has('follow')) {
    await readAll(true);
    return ExitCode.OK;
  }

  const client = new ControlClient(args.server(io.env), args.token(io.env));
  try {
    let lastCheck = 0;
    while (!io.signal.aborted) {
      await readAll(false);
      if (Date.now() - lastCheck >= STATE_CHECK_MS) {
        lastCheck = Date.now();
        const state = await client
          .getJob(jobId!)
          .then((d) => jobStateName(d.summary?.state))
          .catch(() => undefined); // no server: follow until interrupted
        if (state === 'SUCCEEDED' || state === 'FAILED' || state === 'CANCELLED') {
          await readAll(true);
          return ExitCode.OK;
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        io.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
    await readAll(true);
    return ExitCode.INTERRUPTED;
  } finally {
    client.close();
  }
}

export const logsCommand: Command = {
  name: 'logs',
  summary: "print (or follow with -f) a job's rank logs",
  help: HELP,
  flags: { ...CONNECTION_FLAGS, json: 'boolean', rank: 'string', follow: 'boolean', runs: 'string' },
  aliases: { '-f': '--follow' },
  run,
};
