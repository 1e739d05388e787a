// Hugging Face tokenizers (tokenizer.json): Qwen2's byte-level BPE with its added special tokens,
// and any other model the @huggingface/tokenizers library reads. The library is Hugging Face's
// own JavaScript port of their Rust `tokenizers`; it works offline from the two local files and
// has no dependencies. We wrap it in our Tokenizer interface so pack, index and evaluation use it
// like the byte tokenizer.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import * as hfTokenizers from '@huggingface/tokenizers';

import { ByteTokenizer, type SpecialTokens, type Tokenizer } from './tokenizer.js';

/**
 * The part of the library's Tokenizer class we use. The package's own .d.ts files import each
 * other without file extensions, which NodeNext resolution cannot follow, so its types arrive as
 * unresolved: this interface states them once.
 */
interface HfLibraryTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
  token_to_id(token: string): number | undefined;
  get_vocab(withAddedTokens: boolean): Map<string, number>;
}
const LibraryTokenizer = (
  hfTokenizers as unknown as { Tokenizer: new (json: object, config: object) => HfLibraryTokenizer }
).Tokenizer;

export class TokenizerFileError extends Error {
  override name = 'TokenizerFileError';
}

/** The token a Qwen2-style vocabulary ends documents with; the default for every special. */
const END_OF_TEXT = '<|endoftext|>';

export class HfTokenizer implements Tokenizer {
  readonly version = 1;

  private constructor(
    /** 'hf:' + the first 16 hex digits of the tokenizer.json's sha256: the index names the exact file. */
    readonly name: string,
    readonly vocabSize: number,
    readonly specials: SpecialTokens,
    private readonly library: HfLibraryTokenizer,
  ) {}

  /**
   * Reads `tokenizer.json` (a file, or a folder holding one) and `tokenizer_config.json` beside it
   * when present. The specials come from the config's bos/eos/pad tokens; a missing one falls back
   * to `<|endoftext|>` (Qwen2 has no BOS and separates documents with `<|endoftext|>`).
   */
  static async load(path: string): Promise<HfTokenizer> {
    const file = (await isDirectory(path)) ? join(path, 'tokenizer.json') : path;
    const bytes = await readFile(file).catch((e: NodeJS.ErrnoException) => {
      throw new TokenizerFileError(`cannot read tokenizer file ${file}: ${e.code ?? e.message}`);
    });
    const json = parseJsonObject(bytes.toString('utf8'), file);
    if (typeof json.model !== 'object' || json.model === null) {
      throw new TokenizerFileError(
        `tokenizer file ${file}: 'model' is missing: not a Hugging Face tokenizer.json`,
      );
    }
    const configFile = join(dirname(file), 'tokenizer_config.json');
    const configText = await readFile(configFile, 'utf8').catch(() => undefined);
    const config = configText === undefined ? {} : parseJsonObject(configText, configFile);

    let library: HfLibraryTokenizer;
    try {
      library = new LibraryTokenizer(json, config);
    } catch (e) {
      throw new TokenizerFileError(`tokenizer file ${file} cannot be used: ${(e as Error).message}`);
    }
    const vocab = library.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    if (maxId < 0) throw new TokenizerFileError(`tokenizer file ${file}: the vocabulary is empty`);

    const special = (field: 'bos_token' | 'eos_token' | 'pad_token'): number => {
      const value = config[field];
      const content =
        typeof value === 'string'
          ? value
          : typeof value === 'object' &&
              value !== null &&
              typeof (value as { content?: unknown }).content === 'string'
            ? (value as { content: string }).content
            : END_OF_TEXT;
      const id = library.token_to_id(content);
      if (id === undefined) {
        const where = content === END_OF_TEXT && config[field] == null ? file : `${configFile} ${field}`;
        throw new TokenizerFileError(`${where}: special token '${content}' is not in the vocabulary`);
      }
      return id;
    };
    const specials = { bos: special('bos_token'), eos: special('eos_token'), pad: special('pad_token') };
    const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
    return new HfTokenizer(`hf:${digest}`, maxId + 1, specials, library);
  }

  /**
   * Text → ids, as the reference library gives them: the text of an added special token (e.g.
   * `<|im_start|>`) becomes its id; no BOS/EOS is added around the text.
   */
  encode(text: string): Uint32Array {
    return Uint32Array.from(this.library.encode(text, { add_special_tokens: false }).ids);
  }

  decode(ids: ArrayLike<number>, options: { showSpecials?: boolean } = {}): string {
    const list = Array.from(ids);
    for (const [i, id] of list.entries()) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`token id ${id} at index ${i} is outside 0..${this.vocabSize - 1}`);
      }
    }
    return this.library.decode(list, { skip_special_tokens: !options.showSpecials });
  }
}

/**
 * `byte`, or the path of a Hugging Face tokenizer.json (or of the folder that holds it): what
 * `--tokenizer` accepts wherever text is tokenized (data pack, eval).
 */
export async function openTokenizer(nameOrPath: string): Promise<Tokenizer> {
  if (nameOrPath === 'byte') return new ByteTokenizer();
  if (!(await exists(nameOrPath))) {
    throw new TokenizerFileError(
      `unknown tokenizer '${nameOrPath}': give 'byte' or the path of a Hugging Face tokenizer.json (or its folder)`,
    );
  }
  return HfTokenizer.load(nameOrPath);
}

function parseJsonObject(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TokenizerFileError(`${basename(file)} (${file}) is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerFileError(`${file} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}
