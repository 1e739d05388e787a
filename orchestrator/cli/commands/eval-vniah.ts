// `longctx eval vniah CHECKPOINT --haystack-embeddings FILE`: NIAH with a haystack of precomputed
// embedding vectors (LongVA's V-NIAH: video frames encoded into visual tokens) spliced into the
// model's input in place of token embeddings; the needle is a block of embeddings with its question
// and answer as text, or NIAH's text passkey. The same grid, scoring, ranks and output as `eval niah`.
import { resolve } from 'node:path';

import { HfCheckpointError, hfCheckpointFolder } from '../../../checkpoints/hf-weights.js';
import { openTokenizer, TokenizerFileError } from '../../../data/hf-tokenizer.js';
import { NiahGridError } from '../../../eval/niah-cases.js';
import { evalModelConfig } from '../../../eval/niah-run.js';
import { writeEvalResults } from '../../../eval/niah-results.js';
import { buildVniahCases, type VniahNeedle } from '../../../eval/vniah-cases.js';
import { EmbeddingFile, EmbeddingFileError } from '../../../eval/vniah-embeddings.js';
import { UsageError, type Args, type FlagKind } from '../args.js';
import { writeJson, type CliIo } from '../command.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { numberList, renderNiahTable, runNiahGrid } from './eval-grid.js';

const DEFAULT_LENGTHS = [1024, 2048];
const DEFAULT_DEPTHS = [0, 0.25, 0.5, 0.75, 1];
/** Written into the checkpoint folder by --save, beside eval niah's results. */
export const VNIAH_RESULTS_FILE = 'eval-vniah.json';

export const VNIAH_FLAGS: Record<string, FlagKind> = {
  'haystack-embeddings': 'string',
  'haystack-tensor': 'string',
  'needle-embeddings': 'string',
  'needle-tensor': 'string',
  question: 'string',
  answer: 'string',
};

export const VNIAH_HELP = `

Usage: longctx eval vniah CHECKPOINT --haystack-embeddings FILE [options]

V-NIAH (LongVA's visual needle in a haystack): the same grid, scoring and ranks as eval niah, but the
haystack is precomputed embedding vectors (e.g. video frames encoded into 144 visual tokens each)
spliced into the model's input in place of token embeddings: BOS · haystack · needle · haystack ·
question · answer. Each rank reads only the rows of its own zigzag chunks.

Options (besides --lengths, --depths, --ranks, --tokenizer, --seed, --rope-theta,
--device-budget-gib, --save (as ${VNIAH_RESULTS_FILE}) and --json, as above):
  --haystack-embeddings FILE  safetensors file of one tensor [rows, hidden_size] or [frames,
                              tokens_per_frame, hidden_size] (F32, BF16 or F16); a case takes its
                              first rows, the needle goes in on a frame boundary
  --haystack-tensor NAME      the tensor to use when the file holds several
  --needle-embeddings FILE    the needle as a block of embeddings (same format), with
  --needle-tensor NAME          the tensor to use when the file holds several
  --question TEXT               the question the needle answers, and
  --answer TEXT                 its answer, scored token by token;
                              default: the text passkey needle of eval niah, a random key per case
(exit codes as above)
`;

async function openEmbeddings(
  io: CliIo,
  args: Args,
  flag: string,
  tensorFlag: string,
  hidden: number,
): Promise<EmbeddingFile> {
  const path = resolve(io.cwd, args.string(flag)!);
  const tensor = args.string(tensorFlag);
  return EmbeddingFile.open({ path, ...(tensor !== undefined ? { tensor } : {}) }, hidden);
}

export async function runVniah(args: Args, io: CliIo, checkpointArg: string): Promise<number> {
  for (const flag of ['haystack', 'haystack-seed']) {
    if (args.has(flag))
      throw new UsageError(`--${flag} is an option of eval niah (here: --haystack-embeddings)`);
  }
  if (args.string('haystack-embeddings') === undefined)
    throw new UsageError('eval vniah needs --haystack-embeddings FILE');
  const withNeedle = args.string('needle-embeddings') !== undefined;
  for (const flag of ['question', 'answer', 'needle-tensor']) {
    if (!withNeedle && args.string(flag) !== undefined)
      throw new UsageError(
        `--${flag} goes with --needle-embeddings (the passkey needle asks its own question)`,
      );
  }
  if (withNeedle && (args.string('question') === undefined || args.string('answer') === undefined))
    throw new UsageError('--needle-embeddings needs --question TEXT and --answer TEXT');
  const ranks = args.integer('ranks', 1) ?? 1;
  const contextLengths = numberList(args, 'lengths', DEFAULT_LENGTHS);
  const depths = numberList(args, 'depths', DEFAULT_DEPTHS);
  const ropeTheta = args.number('rope-theta', 1);
  const budgetGib = args.number('device-budget-gib', 0.001) ?? 8;
  const seed = args.integer('seed', 0) ?? 0;
  let tokenizer;
  try {
    tokenizer = await openTokenizer(args.string('tokenizer') ?? 'byte');
  } catch (e) {
    if (e instanceof TokenizerFileError) throw new UsageError(`--tokenizer: ${e.message}`);
    throw e;
  }
  const checkpoint = resolve(io.cwd, checkpointArg);
  const opened: EmbeddingFile[] = [];
  try {
    const config = await evalModelConfig({ checkpoint });
    const haystack = await openEmbeddings(
      io,
      args,
      'haystack-embeddings',
      'haystack-tensor',
      config.hidden_size,
    );
    opened.push(haystack);
    let needle: VniahNeedle = { kind: 'passkey' };
    if (withNeedle) {
      const file = await openEmbeddings(io, args, 'needle-embeddings', 'needle-tensor', config.hidden_size);
      opened.push(file);
      needle = {
        kind: 'embeddings',
        file,
        question: args.string('question')!,
        answer: args.string('answer')!,
      };
    }
    const cases = buildVniahCases({
      contextLengths,
      depths,
      tokenizer,
      haystack,
      needle,
      seed,
      lengthMultiple: 2 * ranks,
    });
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
        haystack: { path: haystack.path, tensor: haystack.tensor },
        needle:
          needle.kind === 'embeddings'
            ? { path: needle.file.path, tensor: needle.file.tensor, question: needle.question }
            : 'passkey',
        seed,
        ranks,
        ropeTheta: ropeTheta ?? null,
        evaluatedAtMs: Date.now(),
        seconds,
      };
      const dir = await hfCheckpointFolder(checkpoint);
      await writeEvalResults(dir, VNIAH_RESULTS_FILE, settings, report);
    }
    if (args.json) writeJson(io, report);
    else io.stdout.write(renderNiahTable(report));
    return ExitCode.OK;
  } catch (e) {
    if (e instanceof NiahGridError) throw new UsageError(e.message);
    if (e instanceof HfCheckpointError || e instanceof EmbeddingFileError)
      throw new CliError(ExitCode.FAILURE, e.message);
    throw e;
  } finally {
    for (const f of opened) await f.close();
  }
}
