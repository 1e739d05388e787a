import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { runDataCommand } from '../../data/commands.js';
import { repoRoot } from '../../core/repo-root.js';
import { tempDir } from './fixtures.js';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runDataCommand(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

test('node dist/data/main.js synth → pack → check works end to end with --json', async (t) => {
  const dir = tempDir(t);
  const main = join(repoRoot, 'dist/data/main.js');
  const exec = promisify(execFile);
  const corpus = join(dir, 'c.jsonl');
  const synthOut = await exec('node', [
    main,
    'synth',
    '--out',
    corpus,
    '--docs',
    '20',
    '--seed',
    '3',
    '--json',
  ]);
  const synthResult = JSON.parse(synthOut.stdout) as { documents: number; passkeyDocuments: number };
  t.is(synthResult.documents, 20);
  t.is(synthResult.passkeyDocuments, 5);

  const packOut = await exec('node', [
    main,
    'pack',
    '--out',
    join(dir, 'p.bin'),
    corpus,
    '--seed=9',
    '--json',
  ]);
  const packed = JSON.parse(packOut.stdout) as {
    tokens: number;
    documents: { kept: number };
    sha256: string;
  };
  t.is(packed.documents.kept, 20);
  t.is(packed.tokens * 4, readFileSync(join(dir, 'p.bin')).length);

  const checkOut = await exec('node', [
    main,
    'check',
    join(dir, 'p.index.json'),
    '--seq-len',
    '256',
    '--json',
  ]);
  const check = JSON.parse(checkOut.stdout) as { ok: boolean; sequences: number };
  t.true(check.ok);
  t.is(check.sequences, Math.floor((packed.tokens - 1) / 256));
});

test('--help prints usage and exits 0', async (t) => {
  for (const command of ['pack', 'synth', 'check']) {
    const { code, stdout } = await run([command, '--help']);
    t.is(code, 0);
    t.true(stdout.startsWith(`Usage: longctx data ${command}`));
  }
  const top = await run(['--help']);
  t.is(top.code, 0);
  t.regex(top.stdout, /pack .*\n.*synth/);
});

test('usage errors exit 2 and say what to do', async (t) => {
  const dir = tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [[], /Usage: longctx data <command>/],
    [['frobnicate'], /unknown command 'frobnicate' \(commands: pack, synth, check\)/],
    [['pack', 'x.jsonl'], /--out is required/],
    [['pack', '--out', 'o.bin'], /no inputs/],
    [
      ['pack', '--out', 'o.bin', 'x', '--keep-prob', '0.5'],
      /--upsample-threshold and --keep-prob go together/,
    ],
    [['pack', '--out', 'o.bin', 'x', '--seed', '-4'], /--seed must be an integer >= 0, got '-4'/],
    [['pack', '--out', 'o.bin', 'x', '--frob'], /unknown option --frob for 'data pack'/],
    [['pack', '--out', 'o.bin', 'x', '--tokenizer', 'bpe'], /--tokenizer: unknown tokenizer 'bpe'/],
    [['pack', 'x', '--out'], /option --out needs a value/],
    [
      ['synth', '--out', join(dir, 's.jsonl'), '--passkey-fraction', '2'],
      /--passkey-fraction must be a number from 0 to 1/,
    ],
    [
      ['synth', '--out', join(dir, 's.jsonl'), '--min-chars', '90', '--max-chars', '10'],
      /max chars 10 is below min chars 90/,
    ],
    [['check', 'x.bin'], /--seq-len is required/],
  ];
  for (const [argv, message] of cases) {
    const { code, stderr } = await run(argv);
    t.is(code, 2, argv.join(' '));
    t.regex(stderr, message);
  }
  const { stderr } = await run(['pack', '--frob']);
  t.regex(stderr, /Run 'longctx data pack --help' for usage/);
});

test('bad data exits 1 naming the file and line', async (t) => {
  const dir = tempDir(t);
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"text":"fine"}\n{"text": 5}\n');
  const packBad = await run(['pack', '--out', join(dir, 'o.bin'), bad]);
  t.is(packBad.code, 1);
  t.is(packBad.stderr, `error: ${bad}:2: "text" must be a string, got number\n`);
  const missing = await run(['pack', '--out', join(dir, 'o.bin'), join(dir, 'nope.jsonl')]);
  t.is(missing.code, 1);
  t.is(missing.stderr, `error: input ${join(dir, 'nope.jsonl')} does not exist\n`);
  const check = await run(['check', join(dir, 'o.bin'), '--seq-len', '8']);
  t.is(check.code, 1);
  t.regex(check.stderr, /token file .*o\.bin does not exist/);
});
