// `longctx show JOB`: everything the server knows about a job: its state and progress, the plan
// it was accepted with, its checkpoints, its recent steps and what its workers said.
import { longctx } from '../../../proto/services.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, type Args } from '../args.js';
import { withClient, writeJson, type CliIo, type Command } from '../command.js';
import { ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import {
  formatAge,
  formatBytes,
  formatDuration,
  formatPercent,
  formatRate,
  jobStateName,
  num,
  protoJson,
  str,
  table,
} from '../format.js';
import { planFromProto } from '../../../proto/convert.js';
import { renderPlan } from '../plan-view.js';

const HELP = `Usage: longctx show JOB [options]

Shows JOB: state, progress, the plan it was accepted with (per-rank memory, policy, zigzag
shards, time), its checkpoints, its most recent steps and its workers' events.

Options:
  --json                   print the whole job detail as JSON
${CONNECTION_HELP}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

const RECENT_STEPS = 5;
const RECENT_EVENTS = 10;

function render(detail: longctx.JobDetail, io: CliIo): void {
  const s = detail.summary!;
  const step = num(s.step);
  const out = (line = '') => io.stdout.write(`${line}\n`);
  out(`${str(s.id)} (${str(s.name)}): ${jobStateName(s.state)} — ${str(s.message)}`);
  out(
    `  step ${step}/${num(s.totalSteps)}, ${num(s.devices)} devices on ${str(s.node) || '(not placed)'}, attempt ${num(s.attempt)}, restarts ${num(s.restarts)}`,
  );
  if (step > 0)
    out(
      `  loss ${num(s.loss).toFixed(4)}, ${formatRate(num(s.tokensPerSecond))} tokens/s, MFU ${formatPercent(num(s.mfu))}`,
    );
  // updatedAtMs is the last change of state; while a job trains, its steps say how fresh it is.
  const lastStep = detail.recentSteps.at(-1);
  out(
    `  submitted ${formatAge(num(s.submittedAtMs))}, ${jobStateName(s.state)} for ${formatDuration((Date.now() - num(s.updatedAtMs)) / 1000)}` +
      (lastStep ? `, last step ${formatAge(num(lastStep.timeMs))}` : ''),
  );
  if (detail.plan) {
    out();
    out('plan:');
    for (const line of renderPlan(planFromProto(detail.plan), num(s.totalSteps))) out(`  ${line}`);
  }
  out();
  if (detail.checkpoints.length === 0) out('checkpoints: none yet');
  else {
    out('checkpoints:');
    // The server reads manifests, not every byte: it can say published, never verified-valid.
    const rows = detail.checkpoints.map((c) => [
      String(num(c.step)),
      c.valid ? 'published' : 'invalid: no readable manifest.json',
      num(c.bytes) > 0 ? formatBytes(num(c.bytes)) : '-',
      num(c.saveSeconds) > 0 ? formatDuration(num(c.saveSeconds)) : '-',
      str(c.path),
    ]);
    for (const line of table(['STEP', 'STATUS', 'SIZE', 'SAVE', 'PATH'], rows).trimEnd().split('\n'))
      out(`  ${line}`);
    out(
      "  (published: its manifest is written; 'longctx checkpoints JOB' checks every file's sha256: valid)",
    );
  }
  const steps = detail.recentSteps.slice(-RECENT_STEPS);
  if (steps.length > 0) {
    out();
    out('recent steps:');
    const rows = steps.map((r) => [
      String(num(r.step)),
      num(r.loss).toFixed(4),
      formatDuration(num(r.stepSeconds)),
      num(r.stepSeconds) > 0 ? formatRate(num(r.tokens) / num(r.stepSeconds)) : '-',
      formatBytes(num(r.deviceBytesPeak)),
    ]);
    for (const line of table(['STEP', 'LOSS', 'TIME', 'TOK/S', 'PEAK MEM'], rows).trimEnd().split('\n'))
      out(`  ${line}`);
  }
  const events = detail.events.slice(-RECENT_EVENTS);
  if (events.length > 0) {
    out();
    out('worker events:');
    for (const e of events)
      out(
        `  ${new Date(num(e.timeMs)).toISOString()} rank ${num(e.rank)} step ${num(e.step)}: ${str(e.message)}`,
      );
  }
}

export const showCommand: Command = {
  name: 'show',
  summary: "a job's state, plan, checkpoints, recent steps and events",
  help: HELP,
  flags: { ...CONNECTION_FLAGS, json: 'boolean' },
  async run(args: Args, io: CliIo) {
    const [jobId] = args.expect('job');
    const detail = await withClient(args, io, (client) => client.getJob(jobId!));
    if (args.json) writeJson(io, protoJson(longctx.JobDetail, detail));
    else render(detail, io);
    return ExitCode.OK;
  },
};
