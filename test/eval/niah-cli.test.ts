// `longctx eval niah` through the real binary: the table, --json, 2 ranks, and its errors.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { ByteTokenizer } from '../../data/tokenizer.js';
import { buildNiahCases } from '../../eval/niah-cases.js';
import type { NiahReport } from '../../eval/niah-score.js';
import { parseJson, runCli } from '../ops/cli-process.js';
import { copyCorrect, writeCopyModel } from './fixtures.js';

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'longctx-niah-cli-'));
  await writeCopyModel(dir, 0);
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('eval niah prints the length × depth grid, as a table and as JSON, on 2 ranks', async (t) => {
  const grid = ['--lengths', '256,512', '--depths', '0,0.5,1', '--seed', '11', '--haystack-seed', '2'];
  const json = await runCli(['eval', 'niah', dir, ...grid, '--ranks', '2', '--json'], { timeoutMs: 120_000 });
  t.is(json.code, 0, json.stderr);
  const report = parseJson<NiahReport>(json);
  t.deepEqual(report.contextLengths, [256, 512]);
  t.deepEqual(report.depths, [0, 0.5, 1]);
  t.is(report.cells.length, 6);
  // The same cases the library builds; the copy model gets exactly the repeated-digit tokens right.
  const cases = buildNiahCases({
    contextLengths: [256, 512],
    depths: [0, 0.5, 1],
    tokenizer: new ByteTokenizer(),
    haystack: { kind: 'generated', seed: 2 },
    seed: 11,
  });
  t.deepEqual(
    report.cells.map((c) => [c.contextLength, c.depth, c.key, c.answerCorrect, c.found]),
    cases.map((c) => [c.contextLength, c.depth, c.key, copyCorrect(c), false]),
  );
  t.is(report.accuracy, 0);

  const text = await runCli(['eval', 'niah', dir, ...grid, '--save'], { timeoutMs: 120_000 });
  t.is(text.code, 0, text.stderr);
  // --save keeps the results with the checkpoint.
  const saved = JSON.parse(await readFile(join(dir, 'eval-niah.json'), 'utf8')) as NiahReport & {
    settings: { tokenizer: string; ranks: number; seed: number };
  };
  t.deepEqual(
    saved.cells,
    report.cells.map((c, i) => ({ ...c, answerLoss: saved.cells[i]!.answerLoss })),
  );
  t.deepEqual([saved.settings.tokenizer, saved.settings.ranks, saved.settings.seed], ['byte', 1, 11]);
  const lines = text.stdout.split('\n');
  t.regex(lines[0]!, /^length\s+d=0\s+d=0\.5\s+d=1\s+accuracy$/);
  t.regex(lines[1]!, /^256\s+· \d\/5\s+· \d\/5\s+· \d\/5\s+0\.0 ?%$/);
  t.regex(text.stdout, /accuracy 0\.0 ?% over 6 cases/);
});

test('eval niah: bad arguments exit 2, a bad checkpoint exits 1, each naming what is wrong', async (t) => {
  const cases: Array<[string[], number, RegExp]> = [
    [['eval', 'niah'], 2, /'eval' needs KIND CHECKPOINT/],
    [['eval', 'haystack', dir], 2, /unknown evaluation 'haystack' \(evaluations: niah, vniah\)/],
    [
      ['eval', 'niah', dir, '--lengths', '256,x'],
      2,
      /--lengths must be a comma-separated list of numbers, got '256,x'/,
    ],
    [
      ['eval', 'niah', dir, '--lengths', '258', '--ranks', '2'],
      2,
      /context lengths: 258 is not a multiple of 4/,
    ],
    [['eval', 'niah', dir, '--depths', '2'], 2, /depths: 2 is outside 0\.\.1/],
    [['eval', 'niah', dir, '--tokenizer', 'nope'], 2, /--tokenizer: unknown tokenizer 'nope'/],
    [['eval', 'niah', join(dir, 'missing')], 1, /missing does not exist/],
    [['eval', 'niah', dir, '--haystack', join(dir, 'none.bin')], 1, /none\.index\.json does not exist/],
  ];
  for (const [argv, code, message] of cases) {
    const r = await runCli(argv);
    t.is(r.code, code, `${argv.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, argv.join(' '));
  }
});
