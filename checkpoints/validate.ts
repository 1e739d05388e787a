// Deciding whether a checkpoint folder can be trusted, and which one to resume from.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { MANIFEST_FILE, sha256File } from './commit.js';
import { parseCheckpointFolderName, parseManifest, type CheckpointManifest } from './manifest.js';

export type Verdict = { valid: true; manifest: CheckpointManifest } | { valid: false; reason: string };

/** Checks the manifest and every file's size and sha256 (reads every byte). */
export async function verifyCheckpoint(dir: string): Promise<Verdict> {
  let manifest: CheckpointManifest;
  try {
    manifest = parseManifest(await readFile(join(dir, MANIFEST_FILE), 'utf8'), join(dir, MANIFEST_FILE));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { valid: false, reason: code === 'ENOENT' ? 'manifest.json is missing' : (err as Error).message };
  }
  for (const [name, record] of Object.entries(manifest.files)) {
    const path = join(dir, name);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      return { valid: false, reason: `${name} is missing` };
    }
    if (size !== record.bytes)
      return { valid: false, reason: `${name} has ${size} bytes, the manifest says ${record.bytes}` };
    if ((await sha256File(path)) !== record.sha256)
      return { valid: false, reason: `${name} fails its sha256 check` };
  }
  return { valid: true, manifest };
}

/** A checkpoint's size as every tool reports it: the bytes of the files its manifest lists. */
export function checkpointBytes(manifest: CheckpointManifest): number {
  return Object.values(manifest.files).reduce((total, record) => total + record.bytes, 0);
}

/** The manifest of a published folder, read without verifying any file (undefined: none, or unreadable). */
export async function readManifestQuietly(dir: string): Promise<CheckpointManifest | undefined> {
  try {
    const path = join(dir, MANIFEST_FILE);
    return parseManifest(await readFile(path, 'utf8'), path);
  } catch {
    return undefined;
  }
}

export interface CheckpointListing {
  step: number;
  dir: string;
}

/** Published checkpoint folders (never temporary ones), newest first. */
export async function listCheckpoints(checkpointsDir: string): Promise<CheckpointListing[]> {
  let names: string[];
  try {
    names = await readdir(checkpointsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: CheckpointListing[] = [];
  for (const name of names) {
    const step = parseCheckpointFolderName(name);
    if (step !== undefined) out.push({ step, dir: join(checkpointsDir, name) });
  }
  return out.sort((a, b) => b.step - a.step);
}

export interface ResumeChoice {
  /** The newest checkpoint whose checksums verify, or undefined to start from scratch. */
  checkpoint?: { step: number; dir: string; manifest: CheckpointManifest };
  /** One line per newer checkpoint that was skipped, naming it and why. */
  warnings: string[];
}

export async function chooseResumeCheckpoint(checkpointsDir: string): Promise<ResumeChoice> {
  const warnings: string[] = [];
  for (const { step, dir } of await listCheckpoints(checkpointsDir)) {
    const verdict = await verifyCheckpoint(dir);
    if (verdict.valid) return { checkpoint: { step, dir, manifest: verdict.manifest }, warnings };
    warnings.push(`skipping checkpoint ${dir}: ${verdict.reason}`);
  }
  return { warnings };
}
