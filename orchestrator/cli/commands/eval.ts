// `longctx eval niah CHECKPOINT`: needle-in-a-haystack evaluation of a checkpoint folder (ours or a
// Hugging Face one) on a grid of context lengths × needle depths, on 1 or N zigzag-ring ranks of
// this machine. Prints the grid as a table (or --json). Needs no server.
import { resolve } from 'node:path';

import { HfCheckpointError, hfCheckpointFolder } from '../../../checkpoints/hf-weights.js';
import { openTokenizer, TokenizerFileError } from '../../../data/hf-tokenizer.js';
import { TokenIndexError } from '../../../data/index-file.js';
import { buildNiahCases, NiahGridError, type Haystack } from '../../../eval/niah-cases.js';
import { haystackFromTokenFile, NIAH_RESULTS_FILE, writeNiahResults } from '../../../eval/niah-results.js';
import { UsageError, type Args } from '../args.js';
import { writeJson, type CliIo, type Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { numberList, renderNiahTable, runNiahGrid } from './eval-grid.js';
import { runVniah, VNIAH_FLAGS, VNIAH_HELP } from './eval-vniah.js';

export { renderNiahTable };

// Exported here first; it lives with the other results code now (eval/niah-results.ts).
export { NIAH_RESULTS_FILE };

const DEFAULT_LENGTHS = [1024, 2048];
const DEFAULT_DEPTHS = [0, 0.25, 0.5, 0.75, 1];

const HELP = `Usage: longctx eval niah CHECKPOINT [options]

Needle in a haystack: for every context length × depth, hides "The pass key is NNNNN." at that
depth of a haystack, asks for the key at the end, and runs one forward pass (no KV cache) of the
checkpoint over the whole case, cut into zigzag shards over --ranks ranks as training cuts it. A
case is found only when every token of the key is the strict argmax of the logits before it (a
tie counts as not found). CHECKPOINT: a checkpoint folder (runs/JOB/checkpoints/step-N) or a
Hugging Face Qwen2 folder (config.json + model.safetensors or shards).

Options:
  --lengths L,...          context lengths in tokens, multiples of 2 × ranks (default ${DEFAULT_LENGTHS.join(',')})
  --depths D,...           needle depths from 0 (start of the haystack) to 1 (end) (default ${DEFAULT_DEPTHS.join(',')})
  --ranks N                ring ranks, one process each (default 1)
  --tokenizer NAME|PATH    byte (default) or a Hugging Face tokenizer.json (or its folder)
  --haystack FILE          take the haystack from a packed token file (its index or tokens);
                           default: generated pseudo-English filler
  --haystack-seed N        seed of the generated haystack (default 0)
  --seed N                 seed of the keys (default 0)
  --rope-theta X           evaluate with this RoPE base instead of the checkpoint's
  --device-budget-gib G    each rank's device memory budget (default 8)
  --save                   also write the results into the checkpoint folder as ${NIAH_RESULTS_FILE}
                           (with the grid's settings), where they stay with the checkpoint
  --json                   print {contextLengths, depths, accuracy, accuracyByLength, cells: [{contextLength,
                           depth, needlePosition, key, found, answerCorrect, answerTokens, answerLoss}]}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

async function runNiah(args: Args, io: CliIo): Promise<number> {
  const [kind, checkpointArg] = args.expect('kind', 'checkpoint');
  if (kind === 'vniah') return runVniah(args, io, checkpointArg!);
  if (kind !== 'niah') throw new UsageError(`unknown evaluation '${kind}' (evaluations: niah, vniah)`);
  const vniahOnly = Object.keys(VNIAH_FLAGS).find((flag) => args.has(flag));
  if (vniahOnly) throw new UsageError(`--${vniahOnly} is an option of eval vniah`);
  const ranks = args.integer('ranks', 1) ?? 1;
  const contextLengths = numberList(args, 'lengths', DEFAULT_LENGTHS);
  const depths = numberList(args, 'depths', DEFAULT_DEPTHS);
  const ropeTheta = args.number('rope-theta', 1);
  const budgetGib = args.number('device-budget-gib', 0.001) ?? 8;
  let tokenizer;
  try {
    tokenizer = await openTokenizer(args.string('tokenizer') ?? 'byte');
  } catch (e) {
    if (e instanceof TokenizerFileError) throw new UsageError(`--tokenizer: ${e.message}`);
    throw e;
  }
  let haystack: Haystack = { kind: 'generated', seed: args.integer('haystack-seed', 0) ?? 0 };
  const haystackPath = args.string('haystack');
  try {
    if (haystackPath !== undefined) {
      haystack = await haystackFromTokenFile(resolve(io.cwd, haystackPath), Math.max(...contextLengths));
    }
    const cases = buildNiahCases({
      contextLengths,
      depths,
      tokenizer,
      haystack,
      seed: args.integer('seed', 0) ?? 0,
      lengthMultiple: 2 * ranks,
    });
    const checkpoint = resolve(io.cwd, checkpointArg!);
    const { report, seconds } = await runNiahGrid(
      io,
      args,
      cases,
      { contextLengths, depths },
      { checkpoint, ranks, ropeTheta, budgetGib },
    );
    if (args.has('save')) {
      const settings = {
        tokenizer: tokenizer.name,
        haystack:
          haystackPath !== undefined
            ? resolve(io.cwd, haystackPath)
            : `generated:${haystack.kind === 'generated' ? haystack.seed : ''}`,
        seed: args.integer('seed', 0) ?? 0,
        ranks,
        ropeTheta: ropeTheta ?? null,
        evaluatedAtMs: Date.now(),
        seconds,
      };
      await writeNiahResults(await hfCheckpointFolder(checkpoint), settings, report);
    }
    if (args.json) writeJson(io, report);
    else io.stdout.write(renderNiahTable(report));
    return ExitCode.OK;
  } catch (e) {
    if (e instanceof NiahGridError) throw new UsageError(e.message);
    if (e instanceof HfCheckpointError || e instanceof TokenIndexError)
      throw new CliError(ExitCode.FAILURE, e.message);
    throw e;
  }
}

export const evalCommand: Command = {
  name: 'eval',
  summary:
    'evaluate a checkpoint: eval niah|vniah (needle in a haystack of text|embeddings, length × depth grid)',
  help: HELP + VNIAH_HELP,
  flags: {
    ...VNIAH_FLAGS,
    lengths: 'string',
    depths: 'string',
    ranks: 'string',
    tokenizer: 'string',
    haystack: 'string',
    'haystack-seed': 'string',
    seed: 'string',
    'rope-theta': 'string',
    'device-budget-gib': 'string',
    save: 'boolean',
    json: 'boolean',
  },
  run: runNiah,
};
