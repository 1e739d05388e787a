// `longctx eval vniah` through the real binary: the grid as JSON on 2 ranks and as a table with
// --save, and its errors (bad arguments exit 2, bad files exit 1, each naming what is wrong).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { ByteTokenizer } from '../../data/tokenizer.js';
import type { NiahReport } from '../../eval/niah-score.js';
import { buildVniahCases } from '../../eval/vniah-cases.js';
import { EmbeddingFile } from '../../eval/vniah-embeddings.js';
import { parseJson, runCli } from '../ops/cli-process.js';
import { random } from '../kernels/numeric.js';
import { copyCorrect, writeCopyModel } from './fixtures.js';
import { writeEmbeddings } from './vniah-fixtures.js';

const HIDDEN = 64;
let dir = '';
let haystack = '';
let needle = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'longctx-vniah-cli-'));
  await writeCopyModel(dir, 0);
  const rand = random(8);
  haystack = join(dir, 'video.safetensors');
  await writeEmbeddings(
    haystack,
    'frames',
    [24, 12, HIDDEN],
    Float32Array.from({ length: 24 * 12 * HIDDEN }, rand),
  );
  needle = join(dir, 'needle.safetensors');
  await writeEmbeddings(needle, 'image', [6, HIDDEN], Float32Array.from({ length: 6 * HIDDEN }, rand));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('eval vniah prints the length × depth grid as JSON (2 ranks) and as a table (--save keeps it)', async (t) => {
  const grid = ['--lengths', '128,256', '--depths', '0,0.5,1'];
  const withNeedle = ['--needle-embeddings', needle, '--question', 'Which number?', '--answer', '3773'];
  const json = await runCli(
    [
      'eval',
      'vniah',
      dir,
      '--haystack-embeddings',
      haystack,
      ...withNeedle,
      ...grid,
      '--ranks',
      '2',
      '--json',
    ],
    { timeoutMs: 120_000 },
  );
  t.is(json.code, 0, json.stderr);
  const report = parseJson<NiahReport>(json);
  t.deepEqual([report.contextLengths, report.depths, report.cells.length], [[128, 256], [0, 0.5, 1], 6]);
  // The copy model gets exactly the answer tokens that repeat the token before: '?3' no, '37' no, '77' yes, '73' no.
  const hay = await EmbeddingFile.open({ path: haystack }, HIDDEN);
  const img = await EmbeddingFile.open({ path: needle }, HIDDEN);
  const cases = buildVniahCases({
    contextLengths: [128, 256],
    depths: [0, 0.5, 1],
    tokenizer: new ByteTokenizer(),
    haystack: hay,
    needle: { kind: 'embeddings', file: img, question: 'Which number?', answer: '3773' },
    seed: 0,
  });
  await hay.close();
  await img.close();
  t.deepEqual(
    report.cells.map((c) => [c.key, c.answerCorrect, c.found, c.needlePosition]),
    cases.map((c) => [c.key, copyCorrect(c), false, c.needleStart / c.contextLength]),
  );
  t.true(cases.every((c) => copyCorrect(c) === 1));

  const text = await runCli(['eval', 'vniah', dir, '--haystack-embeddings', haystack, ...grid, '--save'], {
    timeoutMs: 120_000,
  });
  t.is(text.code, 0, text.stderr);
  const lines = text.stdout.split('\n');
  t.regex(lines[0]!, /^length\s+d=0\s+d=0\.5\s+d=1\s+accuracy$/);
  t.regex(lines[1]!, /^128\s+· \d\/5\s+· \d\/5\s+· \d\/5\s+0\.0 ?%$/);
  const saved = JSON.parse(await readFile(join(dir, 'eval-vniah.json'), 'utf8')) as NiahReport & {
    settings: { haystack: { path: string; tensor: string }; needle: string; ranks: number };
  };
  t.deepEqual(saved.settings.haystack, { path: haystack, tensor: 'frames' });
  t.is(saved.settings.needle, 'passkey');
  t.is(saved.cells.length, 6);
});

test('eval vniah: bad arguments exit 2, bad embedding files exit 1, each naming what is wrong', async (t) => {
  const wrongWidth = join(dir, 'wide.safetensors');
  await writeEmbeddings(wrongWidth, 'x', [10, 32], new Float32Array(320));
  const base = ['eval', 'vniah', dir];
  const cases: Array<[string[], number, RegExp]> = [
    [base, 2, /eval vniah needs --haystack-embeddings FILE/],
    [
      [...base, '--haystack-embeddings', haystack, '--question', 'Q?'],
      2,
      /--question goes with --needle-embeddings/,
    ],
    [
      [...base, '--haystack-embeddings', haystack, '--needle-embeddings', needle],
      2,
      /needs --question TEXT and --answer TEXT/,
    ],
    [
      [...base, '--haystack-embeddings', haystack, '--haystack', 'x.bin'],
      2,
      /--haystack is an option of eval niah/,
    ],
    [
      ['eval', 'niah', dir, '--haystack-embeddings', haystack],
      2,
      /--haystack-embeddings is an option of eval vniah/,
    ],
    [
      [...base, '--haystack-embeddings', haystack, '--lengths', '512'],
      2,
      /has 288 rows, a case of 512 tokens needs/,
    ],
    [
      [...base, '--haystack-embeddings', wrongWidth],
      1,
      /wide\.safetensors: tensor 'x' has shape \[10, 32\]: vectors of 32 values, the model's hidden_size is 64/,
    ],
    [
      [...base, '--haystack-embeddings', haystack, '--haystack-tensor', 'video'],
      1,
      /video\.safetensors: tensor 'video' is missing \(the file holds: frames\)/,
    ],
    [
      [...base, '--haystack-embeddings', join(dir, 'none.safetensors')],
      1,
      /none\.safetensors: does not exist/,
    ],
  ];
  for (const [argv, code, message] of cases) {
    const r = await runCli(argv);
    t.is(r.code, code, `${argv.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, argv.join(' '));
  }
});
