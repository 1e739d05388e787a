// `longctx demo --niah`: long-context retrieval shown end to end on this machine's CPUs. Makes a
// corpus of passkey documents (data/synth.ts: a 5-digit key hidden at a random depth of filler
// text, asked for at the end), trains examples/demo-niah.yaml on 2 emulated devices through the
// server — whose `eval: niah` evaluates the final checkpoint at the trained length as a follow-up —
// then evaluates the same checkpoint at twice the trained length with a raised RoPE base. Prints
// both grids, writes them as SVG heatmaps and JSON into the job's run folder, and says how long
// each part took.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { repoRoot } from '../../../core/repo-root.js';
import type { NiahEvaluation } from '../../../core/reports.js';
import { openTokenizer } from '../../../data/hf-tokenizer.js';
import { pack } from '../../../data/pack.js';
import { synth } from '../../../data/synth.js';
import { buildNiahCases } from '../../../eval/niah-cases.js';
import { niahEvaluation } from '../../../eval/niah-results.js';
import { evaluateNiah } from '../../../eval/niah-run.js';
import { summarize } from '../../../eval/niah-score.js';
import { httpAppForServer } from '../../http/app.js';
import { startServer } from '../../server.js';
import { loadSpecFile } from '../../spec/validate.js';
import { Args } from '../args.js';
import type { CliIo } from '../command.js';
import { ControlClient } from '../control-client.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { renderNiahSvg } from '../niah-svg.js';
import { renderNiahTable } from './eval.js';
import { submitCommand } from './submit.js';

export const NIAH_DEMO_SPEC = join(repoRoot, 'examples', 'demo-niah.yaml');

/**
 * Half passkey documents, from the shortest that holds intro, needle and question up to the
 * trained length, and half key lists (data/synth.ts): their repeats are a dense lesson in copying
 * from context, which retrieving a passkey needs and which passkey documents alone teach slowly.
 */
async function ensureNiahCorpus(dataDir: string, seqLen: number, io: CliIo): Promise<void> {
  const index = join(dataDir, 'niah.index.json');
  if (existsSync(index)) return;
  io.stdout.write('making the NIAH corpus (passkey documents and key lists)…\n');
  await synth(join(dataDir, 'niah.jsonl'), {
    docs: 40_000,
    seed: 11,
    passkeyFraction: 0.5,
    keyListFraction: 0.5,
    minChars: 256,
    maxChars: seqLen,
  });
  const packed = await pack({
    inputs: [join(dataDir, 'niah.jsonl')],
    out: join(dataDir, 'niah.bin'),
    seed: 11,
  });
  io.stdout.write(`  ${packed.index.tokens} tokens in ${packed.tokenPath}\n`);
}

/**
 * A RoPE base for a context `scale` times the trained one, NTK-aware (bloc97's rule): the base
 * grows by scale^(d / (d - 2)) for head dimension d, so the slowest rotation spans the longer
 * context while the fastest ones (local order) stay as trained.
 */
export function raisedRopeTheta(theta: number, headDim: number, scale: number): number {
  return theta * scale ** (headDim / (headDim - 2));
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(0)} s`;

export async function runNiahDemo(args: Args, io: CliIo): Promise<number> {
  const started = Date.now();
  const runsDir = resolve(io.cwd, args.string('runs') ?? 'runs');
  const loaded = loadSpecFile(NIAH_DEMO_SPEC);
  if (!loaded.ok) throw new CliError(ExitCode.FAILURE, `${NIAH_DEMO_SPEC}: ${JSON.stringify(loaded.errors)}`);
  const spec = loaded.spec;
  const niah = spec.eval?.niah;
  if (!niah) throw new CliError(ExitCode.FAILURE, `${NIAH_DEMO_SPEC}: has no eval: niah section`);
  // The spec names ../runs/data/…: the corpus lives where the demo spec expects it.
  await ensureNiahCorpus(join(repoRoot, 'runs', 'data'), spec.seq_len, io);
  const corpusMs = Date.now() - started;

  const app = httpAppForServer({ log: () => {} });
  const server = await startServer({
    grpcPort: 0,
    httpPort: 0,
    runsDir,
    localAgent: { devices: spec.devices },
    http: app.http,
    log: (line) => io.stdout.write(`${io.stdout.isTTY === true ? '\r\x1b[2K' : ''}server: ${line}\n`),
  });
  try {
    io.stdout.write(`\ndashboard: ${server.httpUrl ?? '(none)'}  (the job's page shows the heatmap)\n\n`);
    const trainStarted = Date.now();
    const submit = Args.parse(
      [NIAH_DEMO_SPEC, '--watch', '--server', server.grpcAddress],
      submitCommand.flags,
      'submit',
    );
    const code = await submitCommand.run(submit, io);
    const trainMs = Date.now() - trainStarted;
    const client = new ControlClient(server.grpcAddress);
    const jobs = await client.listJobs().finally(() => client.close());
    const jobId = jobs.jobs?.at(-1)?.id;
    if (code !== ExitCode.OK || !jobId) return code === ExitCode.OK ? ExitCode.FAILURE : code;

    // The server evaluates the final checkpoint at the trained length once it is saved.
    io.stdout.write(`waiting for the server's NIAH evaluation of step ${spec.steps}…\n`);
    await server.niahFollowUp.idle();
    let trained: NiahEvaluation | undefined;
    for (let tries = 0; !trained && tries < 600; tries++) {
      trained = (await server.history.niahEvaluations(jobId)).find((e) => e.step === spec.steps);
      if (!trained) await new Promise((r) => setTimeout(r, 500));
    }
    if (!trained)
      throw new CliError(ExitCode.FAILURE, `no NIAH evaluation of ${jobId} step ${spec.steps} arrived`);
    if (trained.error) throw new CliError(ExitCode.FAILURE, `the NIAH evaluation failed: ${trained.error}`);

    // Twice the trained length, with the RoPE base raised for it.
    const config = spec.model.config;
    const ropeTheta = raisedRopeTheta(config.rope_theta, config.hidden_size / config.num_attention_heads, 2);
    const longer = niah.lengths.map((l) => 2 * l);
    const longStarted = Date.now();
    // The demo spec's haystack is generated filler (the same as the server's evaluation used).
    const haystackSeed = niah.haystack.kind === 'generated' ? niah.haystack.seed : 0;
    const cases = buildNiahCases({
      contextLengths: longer,
      depths: niah.depths,
      tokenizer: await openTokenizer(niah.tokenizer),
      haystack: { kind: 'generated', seed: haystackSeed },
      seed: niah.seed,
      lengthMultiple: 2 * spec.devices,
    });
    const long = summarize(
      longer,
      niah.depths,
      await evaluateNiah(cases, { checkpoint: trained.checkpoint, ranks: spec.devices, ropeTheta }),
    );
    const longMs = Date.now() - longStarted;
    const longSettings = {
      tokenizer: niah.tokenizer,
      haystack: `generated:${haystackSeed}`,
      seed: niah.seed,
      ranks: spec.devices,
      ropeTheta,
      evaluatedAtMs: Date.now(),
      seconds: longMs / 1000,
    };
    const longEvaluation = niahEvaluation(spec.steps, trained.checkpoint, longSettings, long);
    const runDir = join(runsDir, jobId);
    // The checkpoint's own eval-niah.json is the trained length's (the spec's grid); this one
    // goes beside it in the run folder.
    await writeFile(
      join(runDir, 'niah-2x.json'),
      JSON.stringify({ settings: longSettings, ...long }, null, 2) + '\n',
    );
    const svgTrained = join(runDir, `niah-${niah.lengths.join('-')}.svg`);
    const svgLong = join(runDir, `niah-${longer.join('-')}-rope-${Math.round(ropeTheta)}.svg`);
    await writeFile(
      svgTrained,
      renderNiahSvg(
        trained,
        `${jobId} step ${trained.step}: trained length, rope_theta ${config.rope_theta}`,
      ),
    );
    await writeFile(
      svgLong,
      renderNiahSvg(
        longEvaluation,
        `${jobId} step ${trained.step}: 2× length, rope_theta ${Math.round(ropeTheta)}`,
      ),
    );

    const asReport = (e: NiahEvaluation) => ({
      contextLengths: e.contextLengths,
      depths: e.depths,
      cells: e.cells.map((c) => ({ ...c, needlePosition: 0, key: '', answerLoss: 0 })),
      accuracy: e.accuracy,
      accuracyByLength: e.contextLengths.map((_, i) => {
        const row = e.cells.slice(i * e.depths.length, (i + 1) * e.depths.length);
        return row.filter((c) => c.found).length / row.length;
      }),
    });
    io.stdout.write(
      [
        '',
        `NIAH at the trained length (rope_theta ${config.rope_theta}), checkpoint step ${trained.step}:`,
        renderNiahTable(asReport(trained)),
        `NIAH at 2× the trained length (rope_theta raised to ${Math.round(ropeTheta)}):`,
        renderNiahTable(long),
        `demo --niah: job ${jobId}`,
        `  corpus        ${seconds(corpusMs)}`,
        `  training      ${seconds(trainMs)} (${spec.steps} steps of ${spec.seq_len} tokens on ${spec.devices} ranks)`,
        `  evaluation    ${trained.seconds.toFixed(0)} s at the trained length, ${seconds(longMs)} at 2×`,
        `  total         ${seconds(Date.now() - started)}`,
        `  heatmaps      ${svgTrained}`,
        `                ${svgLong}`,
        '',
      ].join('\n'),
    );
    return ExitCode.OK;
  } finally {
    await app.close();
    await server.stop();
  }
}
