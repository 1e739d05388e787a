import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import test from 'ava';

import { ByteTokenizer, describeTokenizer } from '../../data/tokenizer.js';
import { checkDataFile, type DataCheck } from '../../data/validate.js';
import { tempDir, writeTokenFile } from './fixtures.js';

const errorOf = (check: DataCheck) => (check.ok ? null : check.error);

test('a good file passes from either its index or its token path', async (t) => {
  const dir = tempDir(t);
  const { tokenPath, indexPath } = writeTokenFile(dir, 'd.bin', new Array<number>(33).fill(7));
  for (const path of [tokenPath, indexPath]) {
    const check = await checkDataFile(path, { seqLen: 8, verifyChecksum: true });
    if (!check.ok) return t.fail(check.error);
    t.is(check.tokens, 33);
    t.is(check.sequences, 4);
    t.is(check.tokenPath, tokenPath);
    t.is(check.indexPath, indexPath);
    t.deepEqual(check.warnings, []);
  }
});

test('missing files are named with what to do', async (t) => {
  const dir = tempDir(t);
  t.is(
    errorOf(await checkDataFile(join(dir, 'none.bin'), { seqLen: 8 })),
    `token file ${join(dir, 'none.bin')} does not exist (pack the data with 'longctx data pack' first)`,
  );
  t.is(
    errorOf(await checkDataFile(join(dir, 'none.index.json'), { seqLen: 8 })),
    `token index ${join(dir, 'none.index.json')} does not exist (pack the data with 'longctx data pack' first)`,
  );
  const { tokenPath, indexPath } = writeTokenFile(dir, 'd.bin', [1, 2, 3]);
  rmSync(tokenPath);
  t.is(
    errorOf(await checkDataFile(indexPath, { seqLen: 1 })),
    `token file ${tokenPath} (named by index ${indexPath}) does not exist; pack the data again`,
  );
  writeFileSync(indexPath, '{"format": "longctx-tokens", ');
  t.regex(errorOf(await checkDataFile(indexPath, { seqLen: 1 })) ?? '', /is not valid JSON/);
  writeFileSync(indexPath, JSON.stringify({ format: 'other' }));
  t.is(
    errorOf(await checkDataFile(indexPath, { seqLen: 1 })),
    `token index ${indexPath}: format must be 'longctx-tokens', got "other"`,
  );
});

test('a truncated file and a corrupted one are caught (the checksum only when asked)', async (t) => {
  const dir = tempDir(t);
  const { tokenPath, indexPath } = writeTokenFile(dir, 'd.bin', new Array<number>(100).fill(3));
  truncateSync(tokenPath, 396);
  t.is(
    errorOf(await checkDataFile(indexPath, { seqLen: 8 })),
    `token file ${tokenPath} is 396 bytes but its index ${indexPath} says 100 tokens (400 bytes): the file is truncated or was replaced; pack the data again`,
  );

  const other = writeTokenFile(dir, 'e.bin', new Array<number>(100).fill(3));
  const bytes = readFileSync(other.tokenPath);
  bytes[17] = bytes[17]! ^ 1;
  writeFileSync(other.tokenPath, bytes);
  t.true((await checkDataFile(other.indexPath, { seqLen: 8 })).ok, 'same size: passes without --verify');
  t.regex(
    errorOf(await checkDataFile(other.indexPath, { seqLen: 8, verifyChecksum: true })) ?? '',
    /has sha256 [0-9a-f]{64} but its index says [0-9a-f]{64}: the file is corrupt or was replaced/,
  );
});

test('a file shorter than one sequence (S + 1 tokens) is an error; repeating data is a warning', async (t) => {
  const dir = tempDir(t);
  const { tokenPath, indexPath } = writeTokenFile(dir, 'd.bin', new Array<number>(64).fill(3));
  t.is(
    errorOf(await checkDataFile(indexPath, { seqLen: 64 })),
    `token file ${tokenPath} holds 64 tokens, too few for one sequence of seq_len 64 (needs 65: 64 inputs and the label after the last one); use more data or a shorter seq_len`,
  );
  const fits = await checkDataFile(indexPath, { seqLen: 63, sequencesNeeded: 4 });
  if (!fits.ok) return t.fail(fits.error);
  t.is(fits.sequences, 1);
  t.is(fits.epochs, 4);
  t.deepEqual(fits.warnings, [
    `the job reads 4 sequences of 63 tokens but ${tokenPath} holds 1: the data repeats (4.00 epochs)`,
  ]);
  t.is(
    errorOf(await checkDataFile(indexPath, { seqLen: 8, modelVocabSize: 100 })),
    `token file ${tokenPath} was made with tokenizer 'byte' of 259 ids, more than the model's vocab size 100`,
  );
  t.is(errorOf(await checkDataFile(indexPath, { seqLen: 0 })), 'seq_len must be a positive integer, got 0');
});

test('--verify checks every token id against the vocabulary, across read chunks', async (t) => {
  const dir = tempDir(t);
  const BYTE = describeTokenizer(new ByteTokenizer()).name;
  // 300 000 tokens (1.2 MB, more than one 1 MiB read): one id past the byte tokenizer's 259.
  const ids = new Array<number>(300_000).fill(5);
  ids[290_001] = 1000;
  const { tokenPath, indexPath } = writeTokenFile(dir, 'd.bin', ids);
  t.true((await checkDataFile(indexPath, { seqLen: 8 })).ok, 'sizes agree: only reading every id finds it');
  t.is(
    errorOf(await checkDataFile(indexPath, { seqLen: 8, verifyChecksum: true })),
    `token file ${tokenPath}: token 290001 is id 1000, not in the vocabulary of tokenizer '${BYTE}' (259 ids) ` +
      `(largest id 1000): the file does not match its tokenizer; pack the data again with the right one`,
  );
});
