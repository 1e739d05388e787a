// `longctx watch JOB`: follows a job through the server's WatchJob stream with a live progress
// line until the job ends; the exit code says how it ended (0 succeeded, 6 failed, 7 cancelled).
import type { ServiceError } from '@grpc/grpc-js';

import { longctx } from '../../../proto/services.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, type Args } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { ControlClient } from '../control-client.js';
import { CliError, ExitCode, EXIT_CODES_HELP, type ExitCodeValue } from '../exit-codes.js';
import { jobStateName, num, protoJson, str } from '../format.js';
import { progressLine, recordStepSeconds, type WatchState } from '../progress.js';

const HELP = `Usage: longctx watch JOB [options]

Follows JOB until it ends: a live line with step/total, loss, tokens/s, MFU, ETA and restarts,
and the workers' events (checkpoints, resumes, errors) above it. Ctrl-C stops watching; the job
goes on. The exit code says how the job ended: 0 succeeded, 6 failed, 7 cancelled.

Options:
  --json                   one JSON object per update ({"type": "summary"|"step"|"event", ...})
${CONNECTION_HELP}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

const TERMINAL: Record<string, ExitCodeValue> = {
  SUCCEEDED: ExitCode.OK,
  FAILED: ExitCode.JOB_FAILED,
  CANCELLED: ExitCode.JOB_CANCELLED,
};

/** How often a non-terminal output gets a new progress line (a terminal redraws on every update). */
const PLAIN_LINE_MS = 1000;
const MFU_LOOKUP_MS = 2000;

/**
 * Follows `jobId` and returns the exit code for how it ended. MFU is not in the step stream; the
 * server computes it as flopsPerStep / (stepSeconds · devices · peak), so mfu · stepSeconds is
 * the same for every step of a job. One read of the job (its summary's MFU and that step's time)
 * gives that product; every later step's MFU is it divided by the step's time.
 */
export async function watchJob(args: Args, io: CliIo, jobId: string): Promise<number> {
  const client = new ControlClient(args.server(io.env), args.token(io.env));
  const tty = io.stdout.isTTY === true && !args.json;
  const state: WatchState = {
    jobId,
    state: '?',
    step: 0,
    totalSteps: 0,
    restarts: 0,
    message: '',
    recentStepSeconds: [],
  };
  let mfuTimesSeconds: number | undefined;
  let lastLookup = 0;
  let lastPlain = 0;
  let lastStepSeconds: number | undefined;
  const printedEvents = new Set<string>();

  let lastPlainLine = '';
  const draw = (force = false) => {
    if (args.json) return;
    if (tty) return void io.stdout.write(`\r\x1b[2K${progressLine(state)}`);
    const now = Date.now();
    const line = progressLine(state);
    // Without a terminal every line stays on screen: an event and the summary that follows it
    // would otherwise print the same status line twice in a row.
    if ((force || now - lastPlain >= PLAIN_LINE_MS) && line !== lastPlainLine) {
      lastPlain = now;
      lastPlainLine = line;
      io.stdout.write(`${line}\n`);
    }
  };
  const say = (line: string) => {
    if (tty) io.stdout.write(`\r\x1b[2K${line}\n`);
    else {
      io.stdout.write(`${line}\n`);
      lastPlainLine = ''; // the status goes under the news again
    }
    draw(true);
  };
  const lookUpMfu = () => {
    const now = Date.now();
    if (mfuTimesSeconds !== undefined || now - lastLookup < MFU_LOOKUP_MS) return;
    lastLookup = now;
    client
      .getJob(jobId)
      .then((detail) => {
        const summary = detail.summary;
        const step = detail.recentSteps.find((s) => num(s.step) === num(summary?.step ?? -1));
        if (summary && step && num(summary.mfu) > 0 && num(step.stepSeconds) > 0) {
          mfuTimesSeconds = num(summary.mfu) * num(step.stepSeconds);
          if (lastStepSeconds) state.mfu = mfuTimesSeconds / lastStepSeconds;
        }
      })
      .catch(() => undefined); // the next step tries again
  };

  try {
    // Ask for the job first: an unknown job is a clear NOT_FOUND (exit 4) before any stream opens.
    await client.getJob(jobId);
    return await new Promise<number>((resolve, reject) => {
      const stream = client.watchJob(jobId);
      let ended: number | undefined;
      const onAbort = () => {
        stream.cancel();
        resolve(ExitCode.INTERRUPTED);
      };
      io.signal.addEventListener('abort', onAbort, { once: true });
      stream.on('data', (update: longctx.JobUpdate) => {
        if (args.json) {
          const type = update.update ?? 'summary';
          const body = update[type];
          const json =
            type === 'summary'
              ? protoJson(longctx.JobSummary, body as longctx.JobSummary)
              : type === 'step'
                ? protoJson(longctx.StepReport, body as longctx.StepReport)
                : protoJson(longctx.WorkerEvent, body as longctx.WorkerEvent);
          io.stdout.write(`${JSON.stringify({ type, ...json })}\n`);
        }
        if (update.update === 'summary' && update.summary) {
          const s = update.summary;
          const previous = state.state;
          state.state = jobStateName(s.state);
          state.step = num(s.step);
          state.totalSteps = num(s.totalSteps);
          state.restarts = num(s.restarts);
          state.message = str(s.message);
          if (num(s.step) > 0) state.loss = num(s.loss);
          if (num(s.tokensPerSecond) > 0) state.tokensPerSecond = num(s.tokensPerSecond);
          if (num(s.mfu) > 0) state.mfu = num(s.mfu);
          if (TERMINAL[state.state] !== undefined) ended = TERMINAL[state.state];
          if (!args.json && previous !== state.state) say(`${jobId}: ${state.state} — ${state.message}`);
          else draw(true);
        } else if (update.update === 'step' && update.step) {
          const s = update.step;
          const seconds = num(s.stepSeconds);
          state.step = num(s.step);
          state.loss = num(s.loss);
          if (seconds > 0) {
            lastStepSeconds = seconds;
            state.tokensPerSecond = num(s.tokens) / seconds;
            recordStepSeconds(state, seconds);
            if (mfuTimesSeconds !== undefined) state.mfu = mfuTimesSeconds / seconds;
            else lookUpMfu();
          }
          draw();
        } else if (update.update === 'event' && update.event && !args.json) {
          const e = update.event;
          // Every rank reports the same checkpoint or resume: say it once.
          const key = `${num(e.step)}/${str(e.message)}`;
          if (!printedEvents.has(key)) {
            printedEvents.add(key);
            say(`${jobId}: step ${num(e.step)}: ${str(e.message)} (rank ${num(e.rank)})`);
          }
        }
      });
      stream.on('error', (err: ServiceError) => {
        io.signal.removeEventListener('abort', onAbort);
        if (io.signal.aborted) return resolve(ExitCode.INTERRUPTED);
        reject(client.explain(err));
      });
      stream.on('end', () => {
        io.signal.removeEventListener('abort', onAbort);
        if (ended === undefined)
          return reject(
            new CliError(
              ExitCode.UNREACHABLE,
              `the server ended the watch of ${jobId} before the job ended: is it still running? 'longctx watch ${jobId}' again`,
            ),
          );
        if (tty) io.stdout.write('\n');
        resolve(ended);
      });
    });
  } finally {
    client.close();
  }
}

export const watchCommand: Command = {
  name: 'watch',
  summary: 'follow a job live: step/total, loss, tokens/s, MFU, ETA, restarts',
  help: HELP,
  flags: { ...CONNECTION_FLAGS, json: 'boolean' },
  async run(args: Args, io: CliIo) {
    const [jobId] = args.expect('job');
    return watchJob(args, io, jobId!);
  },
};
