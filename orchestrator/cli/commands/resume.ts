// `longctx resume JOB`: queues a FAILED or CANCELLED job again under its own id. Its next attempt
// runs in the same run folder, so the node agent resumes it from the newest checkpoint whose
// checksums verify (skipping corrupt ones), with the same optimizer state, data position and
// schedule it saved: the job continues, it does not start over.
import { longctx } from '../../../proto/services.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, type Args } from '../args.js';
import { withClient, writeJson, type CliIo, type Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { protoJson } from '../format.js';
import { watchJob } from './watch.js';

const HELP = `Usage: longctx resume JOB [options]

Queues JOB again when it ended FAILED or CANCELLED. The job keeps its id and run folder; when it
is placed, its ranks continue from its newest valid checkpoint (model, optimizer, data position,
schedule) — or from step 0 if it has none. Its restart count starts again at 0. A job that
succeeded, or has not ended, cannot be resumed (exit 5).

Options:
  --watch                  then follow the job like 'longctx watch' (exit code as watch's)
  --json                   print {resumed, previousState, message, fromStep, checkpoint}
${CONNECTION_HELP}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

export const resumeCommand: Command = {
  name: 'resume',
  summary: 'queue a failed or cancelled job again; it continues from its newest valid checkpoint',
  help: HELP,
  flags: { ...CONNECTION_FLAGS, json: 'boolean', watch: 'boolean' },
  async run(args: Args, io: CliIo) {
    const [jobId] = args.expect('job');
    const response = await withClient(args, io, (client) => client.resumeJob(jobId!));
    if (args.json && !args.has('watch')) writeJson(io, protoJson(longctx.ResumeJobResponse, response));
    if (!response.resumed) {
      if (!response.previousState)
        throw new CliError(ExitCode.NOT_FOUND, `${response.message}: 'longctx ls' lists the jobs`);
      throw new CliError(ExitCode.REJECTED, response.message);
    }
    if (!args.json) io.stdout.write(`${jobId}: ${response.message}\n`);
    return args.has('watch') ? watchJob(args, io, jobId!) : ExitCode.OK;
  },
};
