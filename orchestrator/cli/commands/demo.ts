// `longctx demo` (what `make demo` runs): the main job end to end on this machine. Starts a
// server with its private Redis and a node of 8 emulated CPU devices, makes the synthetic corpus
// (passkey documents among the filler) when it is not there yet, submits examples/demo.yaml —
// the `small` model trained with zigzag ring attention over 8 ranks — follows it live, and ends
// with a summary of what happened. On a GPU host (the addon has CUDA and sees a GPU)
// it trains examples/demo-gpu.yaml on one GPU instead.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { pack } from '../../../data/pack.js';
import { longctx } from '../../../proto/services.js';
import { synth } from '../../../data/synth.js';
import { repoRoot } from '../../../core/repo-root.js';
import { native } from '../../../worker-native/native.js';
import { httpAppForServer } from '../../http/app.js';
import { startServer } from '../../server.js';
import { Args } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { ControlClient } from '../control-client.js';
import { ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { runNiahDemo } from './demo-niah.js';
import { submitCommand } from './submit.js';

const HELP = `Usage: longctx demo [options]

Runs the demo job from start to end: a server with a private Redis and 8 emulated CPU devices,
the synthetic corpus (made on first use), examples/demo.yaml submitted and
followed live (on a GPU host: one GPU and examples/demo-gpu.yaml), then a summary (steps, loss first → last, tokens/s, checkpoints written). The
dashboard's address is printed while it runs.

With --niah: long-context retrieval instead. Trains examples/demo-niah.yaml (the tiny model on
passkey documents, 2 emulated CPU devices); the server evaluates its final checkpoint by needle in
a haystack at the trained length (the spec's eval: niah), then the demo evaluates it at 2× the
length with a raised RoPE base. Prints both grids and writes them as SVG heatmaps into the run folder.

Options:
  --niah         the needle-in-a-haystack demo (above)
  --runs DIR     where runs/<job> go (default ./runs); the corpus is made in the repository's
                 runs/data, where examples/demo.yaml looks for it
  -h, --help     show this help

${EXIT_CODES_HELP}`;

async function ensureCorpus(runsDir: string, io: CliIo): Promise<string> {
  const index = join(runsDir, 'data', 'synth.index.json');
  if (existsSync(index)) return index;
  io.stdout.write('making the synthetic corpus (filler text with passkey documents)…\n');
  await synth(join(runsDir, 'data', 'synth.jsonl'), { docs: 400, seed: 7, passkeyFraction: 0.25 });
  const packed = await pack({
    inputs: [join(runsDir, 'data', 'synth.jsonl')],
    out: join(runsDir, 'data', 'synth.bin'),
    seed: 7,
  });
  io.stdout.write(`  ${packed.index.tokens} tokens in ${packed.tokenPath}\n`);
  return packed.indexPath;
}

async function run(args: Args, io: CliIo): Promise<number> {
  args.expect();
  if (args.has('niah')) return runNiahDemo(args, io);
  const runsDir = resolve(io.cwd, args.string('runs') ?? 'runs');
  // The spec names ../runs/data/…: the corpus lives where the demo spec expects it.
  await ensureCorpus(join(repoRoot, 'runs'), io);
  const onGpu = native().buildInfo().cudaDevices > 0;
  const app = httpAppForServer({ log: () => {} });
  const started = Date.now();
  const server = await startServer({
    grpcPort: 0,
    httpPort: 0,
    runsDir,
    localAgent: { devices: onGpu ? 1 : 8 },
    http: app.http,
    // On a terminal the watch keeps its status on a line without a newline: clear it first, or the
    // log line is glued to it and the status shows twice (the redraw comes on the next update).
    log: (line) => io.stdout.write(`${io.stdout.isTTY === true ? '\r\x1b[2K' : ''}server: ${line}\n`),
  });
  try {
    io.stdout.write(`\ndashboard: ${server.httpUrl ?? '(none)'}  (open it while the job runs)\n\n`);
    const spec = join(repoRoot, 'examples', onGpu ? 'demo-gpu.yaml' : 'demo.yaml');
    const submit = Args.parse(
      [spec, '--watch', '--server', server.grpcAddress],
      submitCommand.flags,
      'submit',
    );
    const code = await submitCommand.run(submit, io);
    const client = new ControlClient(server.grpcAddress);
    try {
      const jobs = await client.listJobs();
      const job = jobs.jobs?.[jobs.jobs.length - 1];
      if (job?.id) {
        const detail = await client.getJob(job.id);
        const steps = detail.recentSteps ?? [];
        const first = steps[0];
        const last = steps[steps.length - 1];
        const tokensPerSecond =
          steps.reduce((a, s) => a + Number(s.tokens) / Number(s.stepSeconds), 0) / Math.max(1, steps.length);
        const kept = (detail.checkpoints ?? []).map(
          (c) => `step ${String(c.step)}${c.valid ? '' : ' (invalid)'}`,
        );
        const written = (detail.events ?? []).filter(
          (e) => e.kind === longctx.WorkerEvent.Kind.KIND_CHECKPOINT_SAVED,
        ).length;
        io.stdout.write(
          [
            '',
            `demo ${code === ExitCode.OK ? 'finished' : 'ended with errors'} in ${((Date.now() - started) / 1000).toFixed(0)} s — job ${job.id}`,
            `  steps        ${String(last?.step ?? 0)} of ${String(detail.summary?.totalSteps ?? '?')} (restarts: ${String(detail.summary?.restarts ?? 0)})`,
            `  loss         ${Number(first?.loss ?? NaN).toFixed(3)} → ${Number(last?.loss ?? NaN).toFixed(3)}`,
            `  tokens/s     ${tokensPerSecond.toFixed(0)} (mean over steps, ${onGpu ? 'one rank on GPU 0' : "8 ranks on this machine's cores"})`,
            `  checkpoints  ${written} written; kept ${kept.length > 0 ? kept.join(', ') : 'none'} in ${join(runsDir, job.id, 'checkpoints')}`,
            `  logs         ${join(runsDir, job.id, 'logs')}`,
            '',
          ].join('\n'),
        );
      }
    } finally {
      client.close();
    }
    return code;
  } finally {
    await app.close();
    await server.stop();
  }
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run the demo job end to end on this machine (what make demo runs)',
  help: HELP,
  flags: { runs: 'string', niah: 'boolean' },
  run,
};
