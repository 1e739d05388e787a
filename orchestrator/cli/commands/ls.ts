// `longctx ls`: the jobs the server knows, oldest first, optionally only some states.
import { longctx } from '../../../proto/services.js';
import { JOB_STATES, type JobState } from '../../../control/job-record.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, UsageError, type Args } from '../args.js';
import { withClient, writeJson, type CliIo, type Command } from '../command.js';
import { ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { formatAge, formatPercent, formatRate, jobStateName, num, protoJson, str, table } from '../format.js';

const HELP = `Usage: longctx ls [options]

Lists jobs in submission order: id, state, step/total, loss, tokens/s, MFU, restarts, node.

Options:
  --state S[,S...]         only jobs in these states (${JOB_STATES.join(', ')}; any case)
  --json                   print {"jobs": [...]} with every field of each job summary
${CONNECTION_HELP}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

export function parseStates(value: string | undefined): longctx.JobState[] {
  if (value === undefined) return [];
  return value.split(',').map((raw) => {
    const name = raw.trim().toUpperCase() as JobState;
    if (!JOB_STATES.includes(name))
      throw new UsageError(`--state: '${raw}' is not a job state (states: ${JOB_STATES.join(', ')})`);
    return longctx.JobState[`JOB_STATE_${name}`];
  });
}

export const lsCommand: Command = {
  name: 'ls',
  summary: 'list jobs with state and progress',
  help: HELP,
  flags: { ...CONNECTION_FLAGS, json: 'boolean', state: 'string' },
  async run(args: Args, io: CliIo) {
    args.expect();
    const states = parseStates(args.string('state'));
    const { jobs } = await withClient(args, io, (client) => client.listJobs(states));
    if (args.json) {
      writeJson(io, { jobs: jobs.map((j) => protoJson(longctx.JobSummary, j)) });
      return ExitCode.OK;
    }
    if (jobs.length === 0) {
      io.stdout.write(
        states.length > 0 ? 'no jobs in those states\n' : "no jobs yet: 'longctx submit SPEC' adds one\n",
      );
      return ExitCode.OK;
    }
    const rows = jobs.map((j) => [
      str(j.id),
      jobStateName(j.state),
      `${num(j.step)}/${num(j.totalSteps)}`,
      num(j.step) > 0 ? num(j.loss).toFixed(4) : '-',
      num(j.tokensPerSecond) > 0 ? formatRate(num(j.tokensPerSecond)) : '-',
      num(j.mfu) > 0 ? formatPercent(num(j.mfu)) : '-',
      String(num(j.restarts)),
      str(j.node) || '-',
      formatAge(num(j.submittedAtMs)),
    ]);
    io.stdout.write(
      table(['ID', 'STATE', 'STEP', 'LOSS', 'TOK/S', 'MFU', 'RESTARTS', 'NODE', 'SUBMITTED'], rows),
    );
    return ExitCode.OK;
  },
};
