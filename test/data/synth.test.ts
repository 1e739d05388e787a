import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import test from 'ava';

import {
  MAX_SENTENCE_CHARS,
  PASSKEY_INTRO,
  PASSKEY_QUESTION,
  passkeyEnding,
  passkeyNeedle,
  synth,
  synthDocuments,
  type SynthDocument,
} from '../../data/synth.js';
import { tempDir } from './fixtures.js';

test('synth is deterministic in its seed', (t) => {
  const a = [...synthDocuments({ docs: 40, seed: 5 })];
  const b = [...synthDocuments({ docs: 40, seed: 5 })];
  const c = [...synthDocuments({ docs: 40, seed: 6 })];
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
});

test('passkey documents hide the key at the stated depth and ask for it at the end', (t) => {
  const docs = [
    ...synthDocuments({ docs: 400, passkeyFraction: 0.5, minChars: 2000, maxChars: 20000, seed: 9 }),
  ];
  const passkeys = docs.filter((d): d is Extract<SynthDocument, { kind: 'passkey' }> => d.kind === 'passkey');
  t.is(passkeys.length, 200, 'the fraction is exact: floor(docs × fraction)');
  for (const doc of passkeys) {
    const { text, passkey, needleOffset, depth } = doc;
    t.regex(passkey, /^[1-9]\d{4}$/);
    t.true(text.startsWith(PASSKEY_INTRO));
    t.true(text.slice(needleOffset).startsWith(passkeyNeedle(passkey).trimEnd()));
    t.true(text.endsWith(`${PASSKEY_QUESTION} The pass key is ${passkey}.`));
    // The key appears in the needle (twice) and the ending (once) and nowhere else.
    t.is(text.split(passkey).length - 1, 3);
    // The needle sits within one sentence of depth × the filler around it (the haystack).
    const haystack =
      text.length - PASSKEY_INTRO.length - passkeyNeedle(passkey).length - passkeyEnding(passkey).length;
    const before = needleOffset - PASSKEY_INTRO.length;
    t.true(
      Math.abs(before - depth * haystack) <= MAX_SENTENCE_CHARS,
      `needle at ${before} of ${haystack}, depth ${depth}`,
    );
  }
  // Depths cover the whole document, not only one region.
  const depths = passkeys.map((d) => d.depth);
  t.true(Math.min(...depths) < 0.05 && Math.max(...depths) > 0.95);
  t.true(MAX_SENTENCE_CHARS < 250);
});

test('filler documents are readable sentences with lengths spread over the range', (t) => {
  const docs = [
    ...synthDocuments({ docs: 300, passkeyFraction: 0, minChars: 100, maxChars: 10000, seed: 2 }),
  ];
  t.true(docs.every((d) => d.kind === 'filler'));
  for (const { text } of docs) {
    t.regex(text, /^[A-Z][A-Za-z ,\n.]+\.$/);
    // A document ends at the first sentence end past its target (trailing space trimmed).
    t.true(text.length >= 100 - 2 && text.length <= 10000 + MAX_SENTENCE_CHARS, `length ${text.length}`);
  }
  const lengths = docs.map((d) => d.text.length).sort((a, b) => a - b);
  // Log-uniform over [100, 10000]: the median is near the geometric mean, 1000.
  const median = lengths[150]!;
  t.true(median > 600 && median < 1700, `median length ${median}`);
  t.true(lengths[0]! < 200 && lengths[299]! > 7000);
});

test('synth writes JSONL, stops at a byte budget, and rejects bad options before writing', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'c.jsonl');
  const result = await synth(out, { bytes: 50000, seed: 1, passkeyFraction: 0.2 });
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
  const docs = lines.map((l) => JSON.parse(l) as SynthDocument);
  t.is(docs.length, result.documents);
  t.is(
    result.textBytes,
    docs.reduce((n, d) => n + Buffer.byteLength(d.text), 0),
  );
  const last = Buffer.byteLength(docs.at(-1)!.text);
  t.true(result.textBytes >= 50000 && result.textBytes - last < 50000);
  t.is(result.passkeyDocuments, Math.floor(docs.length * 0.2));
  t.is(result.fileBytes, readFileSync(out).length);

  await t.throwsAsync(synth(join(dir, 'x.jsonl'), { passkeyFraction: 1.5 }), {
    instanceOf: RangeError,
    message: 'passkey fraction must be between 0 and 1, got 1.5',
  });
  await t.throwsAsync(synth(join(dir, 'x.jsonl'), { minChars: 500, maxChars: 100 }), {
    message: 'max chars 100 is below min chars 500',
  });
  t.throws(() => [...synthDocuments({ docs: 0 })], { message: 'docs must be a positive integer, got 0' });
});

test('key lists: the keys, then the same keys again; their share among the other documents', (t) => {
  const without = [...synthDocuments({ docs: 60, passkeyFraction: 0.5, seed: 3 })];
  const docs = [
    ...synthDocuments({
      docs: 400,
      passkeyFraction: 0.5,
      keyListFraction: 0.5,
      minChars: 256,
      maxChars: 1024,
      seed: 3,
    }),
  ];
  t.is(docs.filter((d) => d.kind === 'passkey').length, 200);
  t.is(
    docs.filter((d) => d.kind === 'key-list').length,
    200,
    'every non-passkey document when the shares add to 1',
  );
  t.is(docs.filter((d) => d.kind === 'filler').length, 0);
  for (const doc of docs) {
    if (doc.kind !== 'key-list') continue;
    t.true(doc.keys.length >= 2);
    for (const key of doc.keys) t.regex(key, /^[1-9]\d{4}$/);
    const list = doc.keys.join(', ');
    t.is(doc.text, `The pass keys are ${list}.\nAgain, the pass keys are ${list}.`);
    t.true(doc.text.length >= 256 - 14 && doc.text.length <= 1024 + 14, `${doc.text.length} characters`);
  }
  // Without key lists the corpus is what it always was (no extra draws from the stream).
  t.deepEqual([...synthDocuments({ docs: 60, passkeyFraction: 0.5, keyListFraction: 0, seed: 3 })], without);
  const mixed = [...synthDocuments({ docs: 1000, passkeyFraction: 0.2, keyListFraction: 0.4, seed: 4 })];
  const lists = mixed.filter((d) => d.kind === 'key-list').length;
  t.true(Math.abs(lists - 400) < 60, `${lists} key lists of 1000, expected about 400`);
  t.throws(() => [...synthDocuments({ passkeyFraction: 0.7, keyListFraction: 0.5 })], {
    message: /^key-list fraction must be between 0 and 1 - passkey fraction \(0\.3\d*\), got 0\.5/,
  });
});
