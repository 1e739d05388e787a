// Writing a checkpoint so that it is either complete or absent: every file goes into a temporary
// folder beside the final one and is fsynced; the manifest (with every file's sha256) is written
// last; then one rename publishes the folder, and the parent folder is fsynced so the rename
// itself survives a crash. Resume never looks at temporary folders.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  checkpointFolderName,
  type CheckpointManifest,
  type FileRecord,
} from './manifest.js';

export const MANIFEST_FILE = 'manifest.json';
const TEMP_PREFIX = '.tmp-';
/** Written by each rank next to its files: their sizes and checksums, so rank 0 need not re-read them. */
const PART_PREFIX = 'part-rank-';

export function temporaryFolder(checkpointsDir: string, step: number): string {
  return join(checkpointsDir, `${TEMP_PREFIX}${checkpointFolderName(step)}`);
}

export function isTemporaryFolder(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a small file durably and returns its record. */
export async function writeDurable(path: string, data: string | Uint8Array): Promise<FileRecord> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Prepares an empty temporary folder for `step` (a leftover from a crashed save is removed). */
export async function beginCheckpoint(checkpointsDir: string, step: number): Promise<string> {
  const dir = temporaryFolder(checkpointsDir, step);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return dir;
}

/** A rank records what it wrote into the temporary folder. */
export async function writePartRecord(
  tempDir: string,
  rank: number,
  files: Record<string, FileRecord>,
): Promise<void> {
  const name = `${PART_PREFIX}${String(rank).padStart(5, '0')}.json`;
  await writeDurable(join(tempDir, `${name}.tmp`), JSON.stringify(files));
  await rename(join(tempDir, `${name}.tmp`), join(tempDir, name));
}

/** Waits until every rank's part record is present (ranks write in parallel). */
export async function waitForParts(
  tempDir: string,
  worldSize: number,
  timeoutMs: number,
): Promise<Record<string, FileRecord>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = (await readdir(tempDir)).filter((n) => n.startsWith(PART_PREFIX) && n.endsWith('.json'));
    if (names.length >= worldSize) {
      const files: Record<string, FileRecord> = {};
      for (const n of names.sort())
        Object.assign(
          files,
          JSON.parse(await readFile(join(tempDir, n), 'utf8')) as Record<string, FileRecord>,
        );
      return files;
    }
    if (Date.now() > deadline) {
      const have = new Set(names.map((n) => Number(n.slice(PART_PREFIX.length, -5))));
      const missing = Array.from({ length: worldSize }, (_, r) => r).filter((r) => !have.has(r));
      throw new Error(
        `checkpoint ${tempDir}: ranks ${missing.join(', ')} did not finish writing within ${timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface CommitOptions {
  step: number;
  worldSize: number;
  jobId: string;
  config: Record<string, unknown>;
  /** Every file in the temporary folder that belongs to the checkpoint, with its record. */
  files: Record<string, FileRecord>;
}

/** Writes the manifest, publishes the folder with one rename, and returns the final path. */
export async function commitCheckpoint(
  checkpointsDir: string,
  tempDir: string,
  options: CommitOptions,
): Promise<string> {
  for (const [name, record] of Object.entries(options.files)) {
    const size = (await stat(join(tempDir, name))).size;
    if (size !== record.bytes)
      throw new Error(`checkpoint ${tempDir}: ${name} has ${size} bytes, its record says ${record.bytes}`);
  }
  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step: options.step,
    worldSize: options.worldSize,
    jobId: options.jobId,
    createdAt: new Date().toISOString(),
    config: options.config,
    files: options.files,
  };
  await writeDurable(join(tempDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  await fsyncPath(tempDir);
  const finalDir = join(checkpointsDir, checkpointFolderName(options.step));
  await rm(finalDir, { recursive: true, force: true });
  await rename(tempDir, finalDir);
  await fsyncPath(checkpointsDir);
  return finalDir;
}

/** Convenience for one process that wrote everything itself. */
export async function writeJsonFile(
  dir: string,
  name: string,
  value: unknown,
): Promise<[string, FileRecord]> {
  return [name, await writeDurable(join(dir, name), JSON.stringify(value, null, 2) + '\n')];
}
