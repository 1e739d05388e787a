// The `data` commands: `pack`, `synth` and `check`. The longctx CLI mounts runDataCommand under
// `longctx data`; data/main.ts runs it standalone. Exit codes: 0 ok, 1 failure (bad data, I/O),
// 2 usage error (unknown option, bad value) — every message says what to do next.
import { existsSync } from 'node:fs';

import { parseArgs, UsageError, type FlagKind, type ParsedArgs } from '../core/args.js';
import { DataInputError } from './documents.js';
import { TokenIndexError } from './index-file.js';
import { pack, resolveOutput } from './pack.js';
import { SYNTH_DEFAULTS, synth } from './synth.js';
import { openTokenizer, TokenizerFileError } from './hf-tokenizer.js';
import { checkDataFile } from './validate.js';

export interface CommandIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

const PROGRAM = 'longctx data';

export { UsageError };

/**
 * Who may still read a token file: the jobs a replacement would hurt (queued or running ones map
 * it, resumable ones would read other tokens than their checkpoints' cursors meant). The data
 * commands know no jobs; the longctx CLI answers by asking its server.
 */
export interface DataUsers {
  jobsUsing(
    paths: { tokenPath: string; indexPath: string },
    connection: { server?: string; token?: string },
  ): Promise<{ jobs: string[]; note?: string }>;
}

const MAIN_HELP = `Usage: ${PROGRAM} <command> [options]

Commands:
  pack    tokenize documents into one packed token stream with a JSON index
  synth   generate an offline corpus (filler and passkey-retrieval documents) as JSONL
  check   check a packed token file against its index before training

Run '${PROGRAM} <command> --help' for a command's options.
`;

const PACK_HELP = `Usage: ${PROGRAM} pack --out DIR|FILE [options] INPUT...

Tokenizes documents, optionally thins out short ones, shuffles them by seed and writes one token
stream (little-endian uint32, a BOS before every document) with a JSON index beside it.
The same inputs and seed always give byte-identical output.

Inputs: .jsonl/.ndjson files (one {"text": "..."} object per line), any other file (one document),
or folders (their .jsonl, .ndjson and .txt files, recursively, in sorted order).

Options:
  --out DIR|FILE           token file to write (corpus.bin → corpus.index.json beside it), or a
                           folder (tokens.bin and tokens.index.json in it)
  --seed N                 seed for the shuffle and the upsampling draws (default 0)
  --upsample-threshold T   documents with fewer than T tokens are "short"; with --keep-prob,
                           short documents are kept with probability P and long ones always,
                           which shifts the mix toward long documents
  --keep-prob P            probability (0..1) of keeping a short document
  --tokenizer NAME|PATH    byte (default: UTF-8 bytes + BOS/EOS/PAD), or a Hugging Face
                           tokenizer.json (or its folder), e.g. Qwen2's byte-level BPE; its
                           tokenizer_config.json beside it names BOS/EOS/PAD (default
                           <|endoftext|>)
  --force                  replace the output even if a queued, running or resumable job reads it
  --server HOST:PORT       the longctx server asked which jobs read the output (default
                           $LONGCTX_SERVER or 127.0.0.1:7170)
  --token TOKEN            its admin token (default $LONGCTX_TOKEN)
  --json                   print the result as one JSON object
  -h, --help               show this help

The files are written aside and renamed into place, so a reader sees the old pair or the new one.
There is no --seq-len: training cuts the stream into sequences of the job's seq_len.
`;

const SYNTH_HELP = `Usage: ${PROGRAM} synth --out FILE [options]

Writes a deterministic synthetic corpus as JSONL ({"kind", "text", ...} per line): filler
documents of readable pseudo-English, and passkey documents that hide a 5-digit key at a random
depth and ask for it at the end ("What is the pass key? The pass key is 12345.").

Options:
  --out FILE               JSONL file to write
  --docs N                 number of documents (default ${SYNTH_DEFAULTS.docs} unless --bytes is given)
  --bytes N                stop once the documents' text reaches N bytes
  --passkey-fraction F     share of passkey documents, 0..1 (default ${SYNTH_DEFAULTS.passkeyFraction})
  --min-chars N            shortest target document length (default ${SYNTH_DEFAULTS.minChars})
  --max-chars N            longest target document length (default ${SYNTH_DEFAULTS.maxChars})
  --seed N                 seed (default ${SYNTH_DEFAULTS.seed})
  --json                   print the result as one JSON object
  -h, --help               show this help
`;

const CHECK_HELP = `Usage: ${PROGRAM} check INDEX|TOKENS --seq-len S [options]

Checks that a packed token file exists, matches its index and holds at least one sequence.

Options:
  --seq-len S              tokens per training sequence (required)
  --sequences N            sequences the job will read (warns when the data would repeat)
  --verify                 also read the whole file: recompute its sha256 and check every
                           token id is below the tokenizer's vocabulary size
  --json                   print the result as one JSON object
  -h, --help               show this help
`;

function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return v === true ? undefined : v;
}

function integerFlag(args: ParsedArgs, name: string, min: number): number | undefined {
  const v = stringFlag(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got '${v}'`);
  }
  return n;
}

function fractionFlag(args: ParsedArgs, name: string): number | undefined {
  const v = stringFlag(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 1))
    throw new UsageError(`--${name} must be a number from 0 to 1, got '${v}'`);
  return n;
}

const PACK_FLAGS: Record<string, FlagKind> = {
  out: 'string',
  seed: 'string',
  'upsample-threshold': 'string',
  'keep-prob': 'string',
  tokenizer: 'string',
  force: 'boolean',
  server: 'string',
  token: 'string',
  json: 'boolean',
  help: 'boolean',
};

async function packCommand(argv: readonly string[], io: CommandIo, users?: DataUsers): Promise<number> {
  const args = parseArgs(argv, PACK_FLAGS, 'data pack');
  if (args.flags.has('help')) {
    io.stdout.write(PACK_HELP);
    return 0;
  }
  const out = stringFlag(args, 'out');
  if (out === undefined) throw new UsageError('--out is required: the token file (or folder) to write');
  if (args.positionals.length === 0)
    throw new UsageError('no inputs: give JSONL or text files, or folders of them');
  const seed = integerFlag(args, 'seed', 0) ?? 0;
  const threshold = integerFlag(args, 'upsample-threshold', 1);
  const keepProb = fractionFlag(args, 'keep-prob');
  if ((threshold === undefined) !== (keepProb === undefined)) {
    throw new UsageError('--upsample-threshold and --keep-prob go together: give both or neither');
  }
  let tokenizer;
  try {
    tokenizer = await openTokenizer(stringFlag(args, 'tokenizer') ?? 'byte');
  } catch (e) {
    if (e instanceof TokenizerFileError) throw new UsageError(`--tokenizer: ${e.message}`);
    throw e;
  }
  const upsample = threshold !== undefined && keepProb !== undefined ? { threshold, keepProb } : null;
  const target = await resolveOutput(out);
  if (users && !args.flags.has('force') && (existsSync(target.tokenPath) || existsSync(target.indexPath))) {
    const server = stringFlag(args, 'server');
    const token = stringFlag(args, 'token');
    const found = await users.jobsUsing(target, {
      ...(server !== undefined ? { server } : {}),
      ...(token !== undefined ? { token } : {}),
    });
    if (found.note) io.stderr.write(`note: ${found.note}\n`);
    if (found.jobs.length > 0) {
      throw new DataInputError(
        `${target.tokenPath} is the data of ${found.jobs.length === 1 ? 'a job' : `${found.jobs.length} jobs`} that may still read it: ${found.jobs.join('; ')}. ` +
          `Replacing it would change the tokens behind their checkpoints' cursors: pack to another path, or pass --force`,
      );
    }
  }
  const result = await pack({ inputs: args.positionals, out, seed, upsample, tokenizer });
  const { index } = result;
  if (args.flags.has('json')) {
    io.stdout.write(
      JSON.stringify({
        tokenPath: result.tokenPath,
        indexPath: result.indexPath,
        tokens: index.tokens,
        documents: index.documents,
        sha256: index.sha256,
      }) + '\n',
    );
  } else {
    const d = index.documents;
    io.stdout.write(
      `packed ${d.kept} documents (${d.read} read, ${d.dropped} dropped by upsampling, ${d.empty} empty) ` +
        `from ${index.sources.length} file(s): ${index.tokens} tokens\n` +
        `  tokens ${result.tokenPath}\n  index  ${result.indexPath}\n  sha256 ${index.sha256}\n`,
    );
  }
  return 0;
}

const SYNTH_FLAGS: Record<string, FlagKind> = {
  out: 'string',
  docs: 'string',
  bytes: 'string',
  'passkey-fraction': 'string',
  'min-chars': 'string',
  'max-chars': 'string',
  seed: 'string',
  json: 'boolean',
  help: 'boolean',
};

async function synthCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = parseArgs(argv, SYNTH_FLAGS, 'data synth');
  if (args.flags.has('help')) {
    io.stdout.write(SYNTH_HELP);
    return 0;
  }
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
  const out = stringFlag(args, 'out');
  if (out === undefined) throw new UsageError('--out is required: the JSONL file to write');
  const result = await synth(out, {
    docs: integerFlag(args, 'docs', 1),
    bytes: integerFlag(args, 'bytes', 1),
    passkeyFraction: fractionFlag(args, 'passkey-fraction'),
    minChars: integerFlag(args, 'min-chars', 1),
    maxChars: integerFlag(args, 'max-chars', 1),
    seed: integerFlag(args, 'seed', 0),
  });
  if (args.flags.has('json')) io.stdout.write(JSON.stringify(result) + '\n');
  else {
    io.stdout.write(
      `wrote ${result.documents} documents (${result.passkeyDocuments} passkey) to ${result.path}: ` +
        `${result.textBytes} bytes of text\n`,
    );
  }
  return 0;
}

const CHECK_FLAGS: Record<string, FlagKind> = {
  'seq-len': 'string',
  sequences: 'string',
  verify: 'boolean',
  json: 'boolean',
  help: 'boolean',
};

async function checkCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = parseArgs(argv, CHECK_FLAGS, 'data check');
  if (args.flags.has('help')) {
    io.stdout.write(CHECK_HELP);
    return 0;
  }
  if (args.positionals.length !== 1) throw new UsageError('give exactly one index or token file to check');
  const seqLen = integerFlag(args, 'seq-len', 1);
  if (seqLen === undefined) throw new UsageError('--seq-len is required: the tokens per training sequence');
  const check = await checkDataFile(args.positionals[0]!, {
    seqLen,
    sequencesNeeded: integerFlag(args, 'sequences', 0),
    verifyChecksum: args.flags.has('verify'),
  });
  if (args.flags.has('json')) {
    const summary = check.ok
      ? { ok: true, tokenPath: check.tokenPath, indexPath: check.indexPath, tokens: check.tokens }
      : check;
    const extra = check.ok
      ? { sequences: check.sequences, epochs: check.epochs, warnings: check.warnings }
      : {};
    io.stdout.write(JSON.stringify({ ...summary, ...extra }) + '\n');
    return check.ok ? 0 : 1;
  }
  if (!check.ok) {
    io.stderr.write(`error: ${check.error}\n`);
    return 1;
  }
  for (const w of check.warnings) io.stderr.write(`warning: ${w}\n`);
  io.stdout.write(
    `ok: ${check.tokenPath}: ${check.tokens} tokens, ${check.sequences} sequences of ${seqLen}` +
      `${args.flags.has('verify') ? ', sha256 and every token id verified' : ''}\n`,
  );
  return 0;
}

const COMMANDS: Record<string, (argv: readonly string[], io: CommandIo) => Promise<number>> = {
  pack: packCommand,
  synth: synthCommand,
  check: checkCommand,
};

/** Runs `data <command> ...`; returns the exit code. */
export async function runDataCommand(
  argv: string[],
  io: CommandIo = process,
  users?: DataUsers,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout).write(MAIN_HELP);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    io.stderr.write(`error: unknown command '${command}' (commands: ${Object.keys(COMMANDS).join(', ')})\n`);
    return 2;
  }
  try {
    return await (command === 'pack' ? packCommand(rest, io, users) : run(rest, io));
  } catch (e) {
    if (e instanceof UsageError || e instanceof RangeError) {
      io.stderr.write(`error: ${e.message}\nRun '${PROGRAM} ${command} --help' for usage.\n`);
      return 2;
    }
    if (e instanceof DataInputError || e instanceof TokenIndexError) {
      io.stderr.write(`error: ${e.message}\n`);
      return 1;
    }
    io.stderr.write(`error: ${(e as Error).message}\n`);
    return 1;
  }
}
