// `longctx cancel JOB`: a waiting job is cancelled at once; a running one's node agent stops its
// gang and frees the devices.
import { longctx } from '../../../proto/services.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, type Args } from '../args.js';
import { withClient, writeJson, type CliIo, type Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { protoJson } from '../format.js';

const HELP = `Usage: longctx cancel JOB [options]

Cancels JOB. A queued or recovering job is cancelled at once; a placed or running job's node agent
stops its ranks and frees the devices (the job then reads CANCELLED). A job that has already
ended cannot be cancelled (exit 5).

Options:
  --json                   print {cancelled, previousState, message}
${CONNECTION_HELP}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

export const cancelCommand: Command = {
  name: 'cancel',
  summary: 'cancel a queued or running job',
  help: HELP,
  flags: { ...CONNECTION_FLAGS, json: 'boolean' },
  async run(args: Args, io: CliIo) {
    const [jobId] = args.expect('job');
    const response = await withClient(args, io, (client) => client.cancelJob(jobId!));
    if (args.json) writeJson(io, protoJson(longctx.CancelJobResponse, response));
    if (response.cancelled) {
      if (!args.json) io.stdout.write(`${jobId}: ${response.message}\n`);
      return ExitCode.OK;
    }
    // No previous state: the server does not know the job.
    if (!response.previousState)
      throw new CliError(ExitCode.NOT_FOUND, `${response.message}: 'longctx ls' lists the jobs`);
    throw new CliError(ExitCode.REJECTED, `cannot cancel ${jobId}: ${response.message}`);
  },
};
