// The longctx command line: finds the command, parses its options, runs it, and turns whatever
// it throws into a message on stderr and one of the documented exit codes (exit-codes.ts).
import { runDataCommand } from '../../data/commands.js';
import { NodeFileError } from '../../cluster/inventory.js';
import { Args, UsageError } from './args.js';
import type { CliIo, Command } from './command.js';
import { agentCommand } from './commands/agent.js';
import { cancelCommand } from './commands/cancel.js';
import { checkpointsCommand } from './commands/checkpoints.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { logsCommand } from './commands/logs.js';
import { lsCommand } from './commands/ls.js';
import { planCommand } from './commands/plan.js';
import { resumeCommand } from './commands/resume.js';
import { serverCommand } from './commands/server.js';
import { showCommand } from './commands/show.js';
import { submitCommand } from './commands/submit.js';
import { watchCommand } from './commands/watch.js';
import { dataUsersOnServer } from './data-users.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from './exit-codes.js';

export const COMMANDS: Command[] = [
  serverCommand,
  agentCommand,
  submitCommand,
  planCommand,
  lsCommand,
  showCommand,
  watchCommand,
  logsCommand,
  cancelCommand,
  resumeCommand,
  checkpointsCommand,
  evalCommand,
  demoCommand,
];

const MAIN_HELP = `Usage: longctx <command> [options]

Trains long-context language models across the devices of a node: the server queues, places and
watches jobs; these commands talk to it over gRPC (--server, default $LONGCTX_SERVER or
127.0.0.1:7170).

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(12)} ${c.summary}`).join('\n')}
  ${'data'.padEnd(12)} prepare training data: data pack | synth | check

Run 'longctx <command> --help' for a command's options. Every read command takes --json.

${EXIT_CODES_HELP}`;

/** Runs `longctx ...argv`; returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(MAIN_HELP);
    return ExitCode.USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(MAIN_HELP);
    return ExitCode.OK;
  }
  if (name === '--version') {
    io.stdout.write('longctx 0.1.0\n');
    return ExitCode.OK;
  }
  if (name === 'data') return runDataCommand(rest, io, dataUsersOnServer(io.env));
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr.write(
      `error: unknown command '${name}' (commands: ${[...COMMANDS.map((c) => c.name), 'data'].join(', ')})\nRun 'longctx --help' for usage.\n`,
    );
    return ExitCode.USAGE;
  }
  try {
    const expanded = rest.map((a) => command.aliases?.[a] ?? a);
    const args = Args.parse(expanded, command.flags, command.name);
    if (args.help) {
      io.stdout.write(command.help);
      return ExitCode.OK;
    }
    return await command.run(args, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\nRun 'longctx ${command.name} --help' for usage.\n`);
      return ExitCode.USAGE;
    }
    if (err instanceof CliError) {
      io.stderr.write(`error: ${err.message}\n${err.details.map((d) => `${d}\n`).join('')}`);
      return err.exitCode;
    }
    if (err instanceof NodeFileError) {
      io.stderr.write(`error: ${err.message}\n`);
      return ExitCode.USAGE;
    }
    io.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return ExitCode.FAILURE;
  }
}
