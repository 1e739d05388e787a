// `longctx submit SPEC`: sends a job spec to the server, which validates it (every field), checks
// its data file and the nodes, plans it, and queues it only when all of that passes.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

import { longctx } from '../../../proto/services.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, UsageError, type Args } from '../args.js';
import { withClient, writeJson, type CliIo, type Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { protoJson } from '../format.js';
import { planFromProto } from '../../../proto/convert.js';
import { renderPlan } from '../plan-view.js';
import { watchJob } from './watch.js';

const HELP = `Usage: longctx submit SPEC [options]

Submits the job spec SPEC (YAML) to the server. The server checks every field, the data file,
that some node can hold the gang, and that the plan fits in device memory; only then is the job
queued. Prints the job id (--json: {accepted, jobId, plan, errors}).

Options:
  --watch                  then follow the job like 'longctx watch' (exit code as watch's)
  --json                   print the server's answer as JSON
${CONNECTION_HELP}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

/** The spec's text and absolute path (the server resolves relative data paths against it). */
export async function readSpec(path: string, cwd: string): Promise<{ yaml: string; path: string }> {
  const absolute = resolve(cwd, path);
  try {
    return { yaml: await readFile(absolute, 'utf8'), path: absolute };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`spec file ${absolute} does not exist`);
    throw new CliError(ExitCode.FAILURE, `cannot read spec file ${absolute}: ${(err as Error).message}`);
  }
}

export function fieldErrorLines(errors: longctx.IFieldError[], file: string): string[] {
  return errors.map((e) => `  ${file}: ${e.path || '(root)'}: ${e.reason ?? ''}`);
}

async function run(args: Args, io: CliIo): Promise<number> {
  const [specArg] = args.expect('spec');
  const spec = await readSpec(specArg!, io.cwd);
  const response = await withClient(args, io, (client) => client.submitJob(spec.yaml, spec.path));
  if (args.json && !args.has('watch')) writeJson(io, protoJson(longctx.SubmitJobResponse, response));
  if (!response.accepted) {
    throw new CliError(
      ExitCode.REJECTED,
      `the server refused ${spec.path}: fix the fields below and submit again`,
      fieldErrorLines(response.errors, spec.path),
    );
  }
  if (!args.json) {
    io.stdout.write(`submitted ${response.jobId}\n`);
    if (response.plan)
      for (const line of renderPlan(planFromProto(response.plan))) io.stdout.write(`  ${line}\n`);
    if (!args.has('watch')) io.stdout.write(`follow it with: longctx watch ${response.jobId}\n`);
  }
  if (args.has('watch')) return watchJob(args, io, response.jobId);
  return ExitCode.OK;
}

export const submitCommand: Command = {
  name: 'submit',
  summary: 'validate, plan and queue a job spec',
  help: HELP,
  flags: { ...CONNECTION_FLAGS, json: 'boolean', watch: 'boolean' },
  run,
};
