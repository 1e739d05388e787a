// `longctx server stop`: stops the server that holds a runs folder, found through the record in
// its state folder (runs/.state/server.json), whatever started it (a terminal, npx, nohup, a
// service manager). SIGTERM lets it stop its gangs and its Redis; SIGKILL only after --timeout,
// and then what it leaves behind is cleaned by the next server on that folder.
import { isRunning, readServerRecord, stateDirOf, stopProcess } from '../../state/server-lock.js';
import { UsageError, type Args } from '../args.js';
import type { CliIo } from '../command.js';
import { CliError, ExitCode } from '../exit-codes.js';

export const SERVER_STOP_HELP = `Usage: longctx server stop [--runs DIR] [--timeout SECONDS]

Stops the longctx server that runs on DIR (default $LONGCTX_RUNS or ./runs), found through
DIR/.state/server.json: SIGTERM, so it stops its running gangs (their jobs are relaunched from
their newest checkpoint when a server starts again) and its Redis; SIGKILL after --timeout
(default 60) seconds. Exits 0 when no server is left running there.`;

export async function runServerStop(args: Args, io: CliIo): Promise<number> {
  args.expect('stop');
  const runsDir = args.string('runs') ?? (io.env.LONGCTX_RUNS || 'runs');
  const timeout = args.number('timeout', 0) ?? 60;
  if (!Number.isFinite(timeout)) throw new UsageError(`--timeout must be a number of seconds`);
  const stateDir = stateDirOf(runsDir.startsWith('/') ? runsDir : `${io.cwd}/${runsDir}`);
  const record = readServerRecord(stateDir);
  if (!record || !isRunning(record)) {
    io.stdout.write(`no server is running on ${stateDir}\n`);
    return ExitCode.OK;
  }
  io.stdout.write(
    `stopping the server (pid ${record.pid}${record.grpcAddress ? `, gRPC ${record.grpcAddress}` : ''})\n`,
  );
  const stopped = await stopProcess(record, timeout * 1000, (line) => io.stdout.write(`${line}\n`));
  if (!stopped) throw new CliError(ExitCode.FAILURE, `the server (pid ${record.pid}) is still running`);
  io.stdout.write('stopped\n');
  return ExitCode.OK;
}
