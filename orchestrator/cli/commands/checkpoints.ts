// `longctx checkpoints JOB`: the job's checkpoint folders, newest first, each verified the way a
// resume verifies it (manifest, then every file's size and sha256), so "valid" here means a
// resume would accept it. Reads the run folder directly: it works with no server running.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { checkpointBytes, listCheckpoints, verifyCheckpoint } from '../../../checkpoints/validate.js';
import type { Args } from '../args.js';
import { writeJson, type CliIo, type Command } from '../command.js';
import { ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';
import { formatBytes, table } from '../format.js';
import { runFolder } from '../run-folder.js';

const HELP = `Usage: longctx checkpoints JOB [options]

Lists JOB's checkpoints (runs/<job>/checkpoints/step-NNNNNNNN), newest first, with their size and
whether they verify: STATUS is valid (manifest present, every file's size and sha256 as recorded)
or invalid and why. SIZE is the bytes of the files the manifest lists, as 'longctx show' gives it.
A resume starts from the newest valid one. Reads every byte of every checkpoint.

Options:
  --runs DIR               the runs folder (default $LONGCTX_RUNS or the repository's runs/)
  --json                   print {"jobId", "dir", "checkpoints": [{step, path, bytes, valid, reason, writtenAtMs}]}
  -h, --help               show this help

${EXIT_CODES_HELP}`;

export interface CheckpointRow {
  step: number;
  path: string;
  /** Bytes of the files its manifest lists (as `show` reports it); of the whole folder when it has none. */
  bytes: number;
  valid: boolean;
  /** Why it is not valid; empty when it is. */
  reason: string;
  /** When the folder was published (its manifest's mtime); 0 without a manifest. */
  writtenAtMs: number;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await folderBytes(path) : (await stat(path)).size;
  }
  return total;
}

export async function checkpointRows(checkpointsDir: string): Promise<CheckpointRow[]> {
  const rows: CheckpointRow[] = [];
  for (const { step, dir } of await listCheckpoints(checkpointsDir)) {
    const verdict = await verifyCheckpoint(dir);
    const manifest = await stat(join(dir, 'manifest.json')).catch(() => undefined);
    rows.push({
      step,
      path: dir,
      bytes: verdict.valid ? checkpointBytes(verdict.manifest) : await folderBytes(dir),
      valid: verdict.valid,
      reason: verdict.valid ? '' : verdict.reason,
      writtenAtMs: manifest ? Math.round(manifest.mtimeMs) : 0,
    });
  }
  return rows;
}

export const checkpointsCommand: Command = {
  name: 'checkpoints',
  summary: "list a job's checkpoints, verified",
  help: HELP,
  flags: { json: 'boolean', runs: 'string' },
  async run(args: Args, io: CliIo) {
    const [jobId] = args.expect('job');
    const dir = join(runFolder(args.runsDir(io.env, io.cwd), jobId!), 'checkpoints');
    const rows = await checkpointRows(dir);
    if (args.json) {
      writeJson(io, { jobId, dir, checkpoints: rows });
      return ExitCode.OK;
    }
    if (rows.length === 0) {
      io.stdout.write(`${jobId} has no checkpoints yet (in ${dir})\n`);
      return ExitCode.OK;
    }
    io.stdout.write(
      table(
        ['STEP', 'STATUS', 'SIZE', 'WRITTEN', 'PATH'],
        rows.map((r) => [
          String(r.step),
          r.valid ? 'valid' : `invalid: ${r.reason}`,
          formatBytes(r.bytes),
          r.writtenAtMs > 0 ? new Date(r.writtenAtMs).toISOString() : '-',
          r.path,
        ]),
      ),
    );
    return ExitCode.OK;
  },
};
