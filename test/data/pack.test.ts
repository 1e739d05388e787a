import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import test from 'ava';

import { DataInputError } from '../../data/documents.js';
import { readTokenIndex } from '../../data/index-file.js';
import { pack } from '../../data/pack.js';
import { RandomStream, Rng } from '../../data/random.js';
import { synth } from '../../data/synth.js';
import { ByteTokenizer } from '../../data/tokenizer.js';
import { sha256File } from '../../data/validate.js';
import { readTokens, splitDocuments, tempDir } from './fixtures.js';

const tok = new ByteTokenizer();
const BOS = tok.specials.bos;

const jsonl = (texts: string[]) => texts.map((text) => JSON.stringify({ text, id: 'x' })).join('\n') + '\n';

test('a hand-made input packs to BOS-separated documents exactly where the shuffle puts them', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.jsonl'), jsonl(['ab', '', 'cdé']) + '\n   \n');
  writeFileSync(join(dir, 'b.txt'), 'Z\n');
  const { tokenPath, indexPath, index } = await pack({
    inputs: [join(dir, 'a.jsonl'), join(dir, 'b.txt')],
    out: join(dir, 'corpus.bin'),
    seed: 3,
  });
  t.is(indexPath, join(dir, 'corpus.index.json'));

  // Documents in input order (the empty one is skipped); the output order is the seeded shuffle.
  const docs = [
    [97, 98],
    [99, 100, 0xc3, 0xa9],
    [90, 10],
  ];
  const order = new Rng(3, RandomStream.shuffle).shuffle(Uint32Array.from([0, 1, 2]));
  const expected = Array.from(order).flatMap((k) => [BOS, ...docs[k]!]);
  t.deepEqual(Array.from(readTokens(tokenPath)), expected);

  t.is(index.tokens, 3 + 2 + 4 + 2);
  t.deepEqual(index.documents, { read: 3, kept: 3, dropped: 0, empty: 1 });
  t.deepEqual(
    index.sources.map((s) => [s.path, s.documents]),
    [
      [join(dir, 'a.jsonl'), 3],
      [join(dir, 'b.txt'), 1],
    ],
  );
  t.is(index.sources[1]!.bytes, 2);
  t.is(index.sha256, await sha256File(tokenPath));
  t.deepEqual(await readTokenIndex(indexPath), index);
  // Nothing but the token file and its index is left beside the inputs.
  t.deepEqual(readdirSync(dir).sort(), ['a.jsonl', 'b.txt', 'corpus.bin', 'corpus.index.json']);
});

test('a single document is [BOS, bytes...]; a folder output gets tokens.bin and tokens.index.json', async (t) => {
  const dir = tempDir(t);
  const input = join(dir, 'one.txt');
  writeFileSync(input, 'hi');
  const out = join(dir, 'out');
  mkdirSync(out);
  const { tokenPath, indexPath } = await pack({ inputs: [input], out });
  t.is(tokenPath, join(out, 'tokens.bin'));
  t.is(indexPath, join(out, 'tokens.index.json'));
  t.deepEqual(Array.from(readTokens(tokenPath)), [BOS, 104, 105]);
});

test('pack is deterministic: same seed gives identical bytes, another seed another order of the same documents', async (t) => {
  const dir = tempDir(t);
  const corpus = join(dir, 'corpus.jsonl');
  await synth(corpus, { docs: 150, seed: 11, minChars: 20, maxChars: 2000 });
  const a = await pack({ inputs: [corpus], out: join(dir, 'a.bin'), seed: 1 });
  const b = await pack({ inputs: [corpus], out: join(dir, 'b.bin'), seed: 1 });
  const c = await pack({ inputs: [corpus], out: join(dir, 'c.bin'), seed: 2 });

  t.true(readFileSync(a.tokenPath).equals(readFileSync(b.tokenPath)));
  t.is(a.index.sha256, b.index.sha256);
  t.deepEqual({ ...a.index, tokenFile: '' }, { ...b.index, tokenFile: '' });

  const docsA = splitDocuments(readTokens(a.tokenPath), BOS).map((d) => tok.decode(d));
  const docsC = splitDocuments(readTokens(c.tokenPath), BOS).map((d) => tok.decode(d));
  t.is(docsA.length, 150);
  t.notDeepEqual(docsA, docsC, 'a different seed must change the order');
  t.deepEqual([...docsA].sort(), [...docsC].sort(), 'but not the documents');
  t.not(a.index.sha256, c.index.sha256);
  // Every packed document is one of the inputs, whole.
  const inputs = readFileSync(corpus, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { text: string }).text);
  t.deepEqual([...docsA].sort(), [...inputs].sort());
});

test('upsampling keeps every long document and short ones at rate p (binomial, 5 sd tolerance)', async (t) => {
  const dir = tempDir(t);
  // 2,000 short documents (10–99 bytes), 1,900 long ones (100–400 bytes) and 100 of exactly the
  // threshold, which count as long. Each starts with a unique number so it can be recognised.
  const rng = new Rng(1234, 0);
  const texts: string[] = [];
  const makeDoc = (i: number, length: number) => {
    const head = `${i}:`;
    return head + 'x'.repeat(length - head.length);
  };
  for (let i = 0; i < 4000; i++) {
    const length = i < 2000 ? rng.range(10, 99) : i < 3900 ? rng.range(101, 400) : 100;
    texts.push(makeDoc(i, length));
  }
  writeFileSync(join(dir, 'mix.jsonl'), jsonl(texts));
  const p = 0.3;
  const { tokenPath, index } = await pack({
    inputs: [join(dir, 'mix.jsonl')],
    out: join(dir, 'up.bin'),
    seed: 7,
    upsample: { threshold: 100, keepProb: p },
  });
  const kept = splitDocuments(readTokens(tokenPath), BOS).map((d) => tok.decode(d));
  const keptIds = new Set(kept.map((d) => Number(d.slice(0, d.indexOf(':')))));
  t.is(keptIds.size, kept.length, 'no document is written twice');
  const longKept = kept.filter((d) => d.length >= 100).length;
  const shortKept = kept.length - longKept;
  t.is(longKept, 2000, 'every document of at least the threshold is kept');
  // Short kept ~ Binomial(2000, 0.3): mean 600, sd = sqrt(2000·0.3·0.7) ≈ 20.5.
  const sd = Math.sqrt(2000 * p * (1 - p));
  t.true(Math.abs(shortKept - 2000 * p) < 5 * sd, `kept ${shortKept} of 2000 short documents`);
  t.deepEqual(index.documents, { read: 4000, kept: kept.length, dropped: 4000 - kept.length, empty: 0 });
  t.deepEqual(index.options, { upsampleThreshold: 100, keepProb: p });

  // keepProb 1 keeps everything; dropping everything is an error that says what to change.
  const all = await pack({
    inputs: [join(dir, 'mix.jsonl')],
    out: join(dir, 'all.bin'),
    upsample: { threshold: 100, keepProb: 1 },
  });
  t.is(all.index.documents.kept, 4000);
  writeFileSync(join(dir, 'short.jsonl'), jsonl(['a', 'b']));
  await t.throwsAsync(
    pack({
      inputs: [join(dir, 'short.jsonl')],
      out: join(dir, 'none.bin'),
      upsample: { threshold: 5, keepProb: 0 },
    }),
    { instanceOf: DataInputError, message: /dropped all 2 documents.*raise --keep-prob/ },
  );
});

test('JSONL errors name the file and line, and leave no output behind', async (t) => {
  const dir = tempDir(t);
  const cases: Array<[string, RegExp]> = [
    ['{"text":"ok"}\n\n{"text": "ok", \n', /bad\.jsonl:3: not valid JSON/],
    ['{"text":"ok"}\n{"body":"no text"}\n', /bad\.jsonl:2: missing the "text" field/],
    ['{"text":42}\n', /bad\.jsonl:1: "text" must be a string, got number/],
    ['{"text":"a"}\n{"text":null}\n', /bad\.jsonl:2: "text" must be a string, got null/],
    ['["text"]\n', /bad\.jsonl:1: expected a JSON object with a "text" field/],
  ];
  for (const [content, message] of cases) {
    const input = join(dir, 'bad.jsonl');
    writeFileSync(input, content);
    await t.throwsAsync(pack({ inputs: [input], out: join(dir, 'out.bin') }), {
      instanceOf: DataInputError,
      message,
    });
  }
  await t.throwsAsync(pack({ inputs: [join(dir, 'nope.jsonl')], out: join(dir, 'out.bin') }), {
    message: `input ${join(dir, 'nope.jsonl')} does not exist`,
  });
  t.deepEqual(readdirSync(dir), ['bad.jsonl']);
});

test('folders expand to their .jsonl and .txt files in sorted order', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'b.txt'), 'B');
  writeFileSync(join(src, 'a.jsonl'), jsonl(['A']));
  writeFileSync(join(src, 'sub', 'c.txt'), 'C');
  writeFileSync(join(src, 'notes.md'), 'ignored');
  writeFileSync(join(src, '.hidden.txt'), 'ignored');
  const { index } = await pack({ inputs: [src], out: join(dir, 'o.bin') });
  t.deepEqual(
    index.sources.map((s) => s.path),
    [join(src, 'a.jsonl'), join(src, 'b.txt'), join(src, 'sub', 'c.txt')],
  );
  t.is(index.tokens, 6);
});
