// Where documents come from: JSONL files (one JSON object per line with a string `text` field, the
// shape SlimPajama and most pretraining dumps ship in) and plain text files (one document per
// file). A directory stands for the .jsonl and .txt files under it, in sorted order, so the same
// folder always yields the same documents in the same order.
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { createInterface } from 'node:readline';

export type InputKind = 'jsonl' | 'text';

export interface InputFile {
  path: string;
  bytes: number;
  kind: InputKind;
}

export interface SourceDocument {
  text: string;
  /** 1-based line of a JSONL document; null for a text file. */
  line: number | null;
}

/** Bad input data: the message names the file (and line) and what is wrong. */
export class DataInputError extends Error {
  override name = 'DataInputError';
}

const JSONL_EXTENSIONS = new Set(['.jsonl', '.ndjson']);
const DIRECTORY_EXTENSIONS = new Set(['.jsonl', '.ndjson', '.txt']);

function kindOf(path: string): InputKind {
  return JSONL_EXTENSIONS.has(extname(path).toLowerCase()) ? 'jsonl' : 'text';
}

/** Resolves the command line's inputs to files, in order; directories expand sorted. */
export async function expandInputs(inputs: readonly string[]): Promise<InputFile[]> {
  if (inputs.length === 0)
    throw new DataInputError('no inputs given: pass JSONL or text files, or folders of them');
  const files: InputFile[] = [];
  for (const input of inputs) {
    let info;
    try {
      info = await stat(input);
    } catch {
      throw new DataInputError(`input ${input} does not exist`);
    }
    if (info.isDirectory()) {
      const found = await listDirectory(input);
      if (found.length === 0) throw new DataInputError(`input folder ${input} holds no .jsonl or .txt files`);
      files.push(...found);
    } else if (info.isFile()) {
      files.push({ path: input, bytes: info.size, kind: kindOf(input) });
    } else {
      throw new DataInputError(`input ${input} is neither a file nor a folder`);
    }
  }
  return files;
}

async function listDirectory(dir: string): Promise<InputFile[]> {
  const out: InputFile[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listDirectory(path)));
    else if (entry.isFile() && DIRECTORY_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
      out.push({ path, bytes: (await stat(path)).size, kind: kindOf(path) });
    }
  }
  return out;
}

/** The documents of one input file, in file order. Blank JSONL lines are skipped. */
export async function* readDocuments(file: InputFile): AsyncGenerator<SourceDocument> {
  if (file.kind === 'text') {
    yield { text: await readFile(file.path, 'utf8'), line: null };
    return;
  }
  const input = createReadStream(file.path, 'utf8');
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNumber = 0;
  try {
    for await (let line of lines) {
      lineNumber++;
      if (lineNumber === 1 && line.startsWith('\uFEFF')) line = line.slice(1);
      if (line.trim() === '') continue;
      yield { text: parseJsonlLine(line, file.path, lineNumber), line: lineNumber };
    }
  } finally {
    // Stopping early (a bad line) must not leave the file open.
    lines.close();
    input.destroy();
  }
}

/** The `text` of one JSONL line, or a DataInputError naming file:line. */
export function parseJsonlLine(line: string, path: string, lineNumber: number): string {
  const where = `${path}:${lineNumber}`;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    throw new DataInputError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DataInputError(`${where}: expected a JSON object with a "text" field`);
  }
  const text = (value as Record<string, unknown>).text;
  if (text === undefined) throw new DataInputError(`${where}: missing the "text" field`);
  if (typeof text !== 'string') {
    throw new DataInputError(
      `${where}: "text" must be a string, got ${text === null ? 'null' : typeof text}`,
    );
  }
  return text;
}
