// manifest.json: what a checkpoint holds and the sha256 of every file in it. A checkpoint folder
// is trusted only when its manifest parses, has our format and version, and every file it
// names is present with the recorded size and checksum.
export const CHECKPOINT_FORMAT = 'longctx-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface FileRecord {
  bytes: number;
  sha256: string;
}

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  step: number;
  worldSize: number;
  jobId: string;
  createdAt: string;
  /** The model config (HF Qwen2 fields) and the training settings that shaped this state. */
  config: Record<string, unknown>;
  files: Record<string, FileRecord>;
}

/** step-00000200: sorts by name in step order, as the design card shows. */
export function checkpointFolderName(step: number): string {
  if (!Number.isInteger(step) || step < 0)
    throw new Error(`checkpoint step must be a whole number, got ${step}`);
  return `step-${String(step).padStart(8, '0')}`;
}

export function parseCheckpointFolderName(name: string): number | undefined {
  const match = /^step-(\d{8,})$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** Parses and checks a manifest's shape; throws naming the first field that is wrong. */
export function parseManifest(text: string, where: string): CheckpointManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: manifest is not JSON (${(err as Error).message})`);
  }
  const m = raw as Partial<CheckpointManifest>;
  if (typeof m !== 'object' || m === null) throw new Error(`${where}: manifest is not an object`);
  if (m.format !== CHECKPOINT_FORMAT)
    throw new Error(`${where}: format is '${String(m.format)}', not '${CHECKPOINT_FORMAT}'`);
  if (m.version !== CHECKPOINT_VERSION) {
    throw new Error(
      `${where}: version ${String(m.version)} is not supported (this build reads ${CHECKPOINT_VERSION})`,
    );
  }
  if (!Number.isInteger(m.step) || (m.step as number) < 0)
    throw new Error(`${where}: step is missing or invalid`);
  if (!Number.isInteger(m.worldSize) || (m.worldSize as number) < 1)
    throw new Error(`${where}: worldSize is missing or invalid`);
  if (typeof m.files !== 'object' || m.files === null) throw new Error(`${where}: files is missing`);
  for (const [name, record] of Object.entries(m.files)) {
    if (
      !Number.isInteger(record?.bytes) ||
      typeof record?.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(record.sha256)
    ) {
      throw new Error(`${where}: files.${name} needs bytes and a sha256`);
    }
  }
  return m as CheckpointManifest;
}
