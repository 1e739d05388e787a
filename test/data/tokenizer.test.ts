import test from 'ava';

import { ByteTokenizer, describeTokenizer, tokenizerByName } from '../../data/tokenizer.js';
import { RandomStream, Rng } from '../../data/random.js';

const tok = new ByteTokenizer();

test('byte tokenizer: ids are the UTF-8 bytes, specials sit above them', (t) => {
  t.deepEqual(Array.from(tok.encode('Ab')), [65, 98]);
  t.deepEqual(Array.from(tok.encode('é')), [0xc3, 0xa9]);
  t.deepEqual(Array.from(tok.encode('€')), [0xe2, 0x82, 0xac]);
  t.deepEqual(Array.from(tok.encode('🎉')), [0xf0, 0x9f, 0x8e, 0x89]);
  t.is(tok.vocabSize, 259);
  t.deepEqual(tok.specials, { bos: 256, eos: 257, pad: 258 });
  t.deepEqual(describeTokenizer(tok), {
    name: 'byte',
    version: 1,
    vocabSize: 259,
    specials: { bos: 256, eos: 257, pad: 258 },
  });
});

test('byte tokenizer round-trips ASCII, multi-byte UTF-8, emoji and control characters', (t) => {
  const texts = [
    '',
    'plain ASCII text.\n',
    'naïve café — déjà vu',
    '中文字符和日本語のテキスト',
    'emoji 🎉👩‍💻 and a flag 🇫🇷',
    'e\u0301 combining accent, tab\t, NUL \u0000, and \r\n line ends',
  ];
  for (const text of texts) {
    const ids = tok.encode(text);
    t.is(ids.length, Buffer.byteLength(text, 'utf8'), text);
    t.true(
      ids.every((id) => id < 256),
      'encode never produces special ids',
    );
    t.is(tok.decode(ids), text);
  }
});

test('decode drops special ids between documents unless asked to show them', (t) => {
  const ids = [
    tok.specials.bos,
    ...tok.encode('héllo'),
    tok.specials.bos,
    ...tok.encode('wörld'),
    tok.specials.eos,
  ];
  t.is(tok.decode(ids), 'héllowörld');
  t.is(tok.decode(ids, { showSpecials: true }), '<|bos|>héllo<|bos|>wörld<|eos|>');
});

test('decode rejects ids outside the vocabulary and replaces a cut multi-byte character', (t) => {
  const error = t.throws(() => tok.decode([65, 259]));
  t.is(error?.message, 'token id 259 at index 1 is outside 0..258');
  t.throws(() => tok.decode([-1]), { message: /token id -1 at index 0/ });
  // The first byte of 'é' alone is not valid UTF-8: it decodes to U+FFFD, never throws.
  t.is(tok.decode([0xc3, 65]), '\uFFFDA');
});

test('tokenizerByName knows byte and names the available tokenizers otherwise', (t) => {
  t.is(tokenizerByName('byte').name, 'byte');
  t.throws(() => tokenizerByName('qwen2-bpe'), { message: "unknown tokenizer 'qwen2-bpe': available: byte" });
});

test('Rng: deterministic per (seed, stream), streams independent, int(n) uniform within tolerance', (t) => {
  const draw = (seed: number, stream: number) => {
    const r = new Rng(seed, stream);
    return Array.from({ length: 8 }, () => r.nextUint32());
  };
  t.deepEqual(draw(5, RandomStream.shuffle), draw(5, RandomStream.shuffle));
  t.notDeepEqual(draw(5, RandomStream.shuffle), draw(6, RandomStream.shuffle));
  t.notDeepEqual(draw(5, RandomStream.shuffle), draw(5, RandomStream.upsample));
  // Seeds that differ only above bit 32 must differ too.
  t.notDeepEqual(draw(1, 1), draw(1 + 2 ** 32, 1));

  // 60,000 draws into 6 bins: each bin expects 10,000 with sd ≈ 91; allow 5 sd.
  const rng = new Rng(42, 9);
  const bins = new Array<number>(6).fill(0);
  for (let i = 0; i < 60000; i++) bins[rng.int(6)]!++;
  for (const count of bins) t.true(Math.abs(count - 10000) < 5 * 91, `bin count ${count}`);
  t.throws(() => new Rng(-1, 0), { message: 'seed must be a non-negative integer, got -1' });
});
