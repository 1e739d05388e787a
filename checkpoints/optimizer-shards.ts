// AdamW state is sharded across ranks (each rank owns a contiguous range of the flat parameter
// buffer, ZeRO-1 style), so each rank writes its own optimizer file. Resuming on another world
// size reads, for each new rank, just the slices of the old shards that overlap its new range.
import { join } from 'node:path';

import {
  asFloat32,
  readSafetensors,
  writeSafetensors,
  type WriteOptions,
  type WrittenFile,
} from './safetensors.js';
import type { CheckpointManifest } from './manifest.js';

/** The range of a flat buffer of `total` elements that `rank` of `world` owns. */
export function shardRange(total: number, world: number, rank: number): [number, number] {
  return [Math.floor((rank * total) / world), Math.floor(((rank + 1) * total) / world)];
}

export function optimizerFileName(rank: number, world: number): string {
  return `optimizer-rank-${String(rank).padStart(5, '0')}-of-${String(world).padStart(5, '0')}.safetensors`;
}

export interface OptimizerShard {
  begin: number;
  end: number;
  total: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

export async function writeOptimizerShard(
  dir: string,
  rank: number,
  world: number,
  shard: OptimizerShard,
  options: WriteOptions = {},
): Promise<[string, WrittenFile]> {
  const name = optimizerFileName(rank, world);
  const length = shard.end - shard.begin;
  if (shard.expAvg.length !== length || shard.expAvgSq.length !== length) {
    throw new Error(
      `optimizer shard of rank ${rank}: moments have ${shard.expAvg.length}/${shard.expAvgSq.length} values, range needs ${length}`,
    );
  }
  const written = await writeSafetensors(
    join(dir, name),
    [
      { name: 'exp_avg', dtype: 'F32', shape: [length], data: shard.expAvg },
      { name: 'exp_avg_sq', dtype: 'F32', shape: [length], data: shard.expAvgSq },
    ],
    { begin: String(shard.begin), end: String(shard.end), total: String(shard.total) },
    options,
  );
  return [name, written];
}

/** Assembles [begin, end) of the optimizer moments from the shards of a saved world of any size. */
export async function readOptimizerRange(
  dir: string,
  manifest: CheckpointManifest,
  begin: number,
  end: number,
): Promise<OptimizerShard> {
  const world = manifest.worldSize;
  let total = -1;
  const expAvg = new Float32Array(end - begin);
  const expAvgSq = new Float32Array(end - begin);
  let covered = 0;
  for (let r = 0; r < world; r++) {
    const name = optimizerFileName(r, world);
    if (!(name in manifest.files)) throw new Error(`${dir}: manifest lists no ${name}`);
    const { header, tensors } = await readSafetensors(join(dir, name));
    const b = Number(header.metadata.begin);
    const e = Number(header.metadata.end);
    total = Number(header.metadata.total);
    const lo = Math.max(b, begin);
    const hi = Math.min(e, end);
    if (lo >= hi) continue;
    const m = asFloat32(tensors.get('exp_avg') ?? new Uint8Array());
    const v = asFloat32(tensors.get('exp_avg_sq') ?? new Uint8Array());
    expAvg.set(m.subarray(lo - b, hi - b), lo - begin);
    expAvgSq.set(v.subarray(lo - b, hi - b), lo - begin);
    covered += hi - lo;
  }
  if (covered !== end - begin)
    throw new Error(`${dir}: optimizer shards cover ${covered} of the ${end - begin} values asked for`);
  return { begin, end, total, expAvg, expAvgSq };
}
