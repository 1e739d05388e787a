// Tokenizers turn document text into the token ids the packed stream holds. The packer, the
// index and the reader only depend on this interface, so a real BPE (Qwen2's) can replace the
// default without touching them: the index records the tokenizer's name, version, vocabulary size
// and special ids, and the reader refuses ids at or above the vocabulary size. The byte tokenizer
// lives here; Hugging Face tokenizer.json files (Qwen2's BPE) in hf-tokenizer.ts.

/** Ids with a fixed meaning. BOS separates documents in the packed stream. */
export interface SpecialTokens {
  bos: number;
  eos: number;
  pad: number;
}

export interface Tokenizer {
  /** Stable name recorded in the index, e.g. "byte". */
  readonly name: string;
  /** Bumped whenever the same text would encode differently. */
  readonly version: number;
  /** Every id is in [0, vocabSize). */
  readonly vocabSize: number;
  readonly specials: SpecialTokens;
  /**
   * Text → ids. The byte tokenizer never produces special ids; a Hugging Face tokenizer turns the
   * text of its added special tokens into their ids, as its reference library does.
   */
  encode(text: string): Uint32Array;
  /** Ids → text. Special ids are dropped, or written as `<|bos|>`-style markers when asked. */
  decode(ids: ArrayLike<number>, options?: { showSpecials?: boolean }): string;
}

/** What the index stores about the tokenizer that produced a token file. */
export interface TokenizerDescriptor {
  name: string;
  version: number;
  vocabSize: number;
  specials: SpecialTokens;
}

export function describeTokenizer(tokenizer: Tokenizer): TokenizerDescriptor {
  return {
    name: tokenizer.name,
    version: tokenizer.version,
    vocabSize: tokenizer.vocabSize,
    specials: { ...tokenizer.specials },
  };
}

/**
 * The default: one token per UTF-8 byte (ids 0–255), then BOS=256, EOS=257, PAD=258. Needs no
 * vocabulary file, round-trips any text exactly, and keeps the model's embedding tiny, which is
 * what the small CPU runs want.
 */
export class ByteTokenizer implements Tokenizer {
  readonly name = 'byte';
  readonly version = 1;
  readonly vocabSize = 259;
  readonly specials: SpecialTokens = { bos: 256, eos: 257, pad: 258 };

  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder('utf-8');

  encode(text: string): Uint32Array {
    const bytes = this.encoder.encode(text);
    return Uint32Array.from(bytes);
  }

  decode(ids: ArrayLike<number>, options: { showSpecials?: boolean } = {}): string {
    // Runs of byte ids are decoded together so multi-byte characters survive; a special id ends
    // the run. Invalid UTF-8 (a sequence cut in the middle) becomes U+FFFD, as TextDecoder does.
    let text = '';
    let run: number[] = [];
    const flush = () => {
      if (run.length > 0) text += this.decoder.decode(Uint8Array.from(run));
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`token id ${id} at index ${i} is outside 0..${this.vocabSize - 1}`);
      }
      if (id < 256) {
        run.push(id);
        continue;
      }
      flush();
      if (options.showSpecials) text += `<|${specialName(this.specials, id)}|>`;
    }
    flush();
    return text;
  }
}

function specialName(specials: SpecialTokens, id: number): string {
  for (const [name, value] of Object.entries(specials)) if (value === id) return name;
  return String(id);
}

/** The tokenizers known by name (anything else given to `--tokenizer` is a tokenizer.json path). */
export const tokenizerNames = ['byte'] as const;

export function tokenizerByName(name: string): Tokenizer {
  switch (name) {
    case 'byte':
      return new ByteTokenizer();
    default:
      throw new Error(`unknown tokenizer '${name}': available: ${tokenizerNames.join(', ')}`);
  }
}
