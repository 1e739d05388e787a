// What one rank writes into a checkpoint and reads back on resume (format: checkpoints/).
//   rank 0:     model.safetensors (HF Qwen2 names), config.json (HF), trainer_state.json
//   every rank: optimizer-rank-RRRRR-of-NNNNN.safetensors (its ZeRO-1 shard of the AdamW moments)
// Every rank writes into the same temporary folder and records its files; rank 0 waits for all
// records, writes the manifest and publishes the folder with one rename. Saving runs in the
// background (Node's file I/O happens on libuv's threads) while training goes on: it works on a
// snapshot copied out of the trainer, so later steps cannot change what is being written.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  commitCheckpoint,
  temporaryFolder,
  waitForParts,
  writeJsonFile,
  writePartRecord,
} from '../../checkpoints/commit.js';
import type { CheckpointManifest, FileRecord } from '../../checkpoints/manifest.js';
import { readOptimizerRange, writeOptimizerShard } from '../../checkpoints/optimizer-shards.js';
import { applyRetention, type RetentionPolicy } from '../../checkpoints/retention.js';
import { asFloat32, readSafetensors, writeSafetensors } from '../../checkpoints/safetensors.js';
import type { SpecialTokens } from '../../data/tokenizer.js';
import type { Precision } from '../../core/policies.js';
import type { ModelConfig } from '../../core/model-config.js';
import type { ParameterView, TrainerState as TrainerSnapshot } from '../trainer.js';

export const MODEL_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';
export const TRAINER_STATE_FILE = 'trainer_state.json';

/** Where training stands, beyond the tensors: enough to continue bit-exactly. */
export interface RunState {
  /** Optimizer steps completed. */
  step: number;
  adamStep: number;
  /** Sequences consumed so far (the next micro-batch reads sequence `sequenceCursor`). */
  sequenceCursor: number;
  tokensSeen: number;
  lastLoss: number;
  seed: number;
  /** World size when saved (resume may use another). */
  worldSize: number;
  /** The sha256 of the token file the cursor counts into (a resume checks it is still the same). */
  dataSha256?: string;
}

/** What config.json says beyond the architecture: how the model was trained and tokenized. */
export interface TrainedAs {
  /** The context length trained at (seq_len). */
  seqLen: number;
  precision: Precision;
  /** The packed data's tokenizer's special ids. */
  specials: SpecialTokens;
  /** The base model's own max_position_embeddings (a preset's), when known. */
  baseMaxPositions?: number;
}

export interface SaveContext {
  checkpointsDir: string;
  jobId: string;
  rank: number;
  world: number;
  config: ModelConfig;
  trainedAs: TrainedAs;
  views: ParameterView[];
  shard: { begin: number; end: number };
  numParameters: number;
  retention: RetentionPolicy;
  /** How long rank 0 waits for the other ranks' files. */
  partsTimeoutMs: number;
}

export interface SavedCheckpoint {
  step: number;
  dir: string;
  bytes: number;
  seconds: number;
}

/**
 * Hugging Face config.json for a Qwen2 causal LM with these weights. Fields HF would otherwise
 * default wrongly are explicit: max_position_embeddings (HF assumes 32768; a model trained at 224K
 * must say so), the tokenizer's special ids, no sliding window (ring attention is full causal), and
 * the dtype it was trained in (the tensors themselves are float32 master weights).
 */
export function hfConfig(config: ModelConfig, trainedAs: TrainedAs): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    hidden_act: 'silu',
    ...config,
    max_position_embeddings: Math.max(trainedAs.seqLen, trainedAs.baseMaxPositions ?? 0),
    bos_token_id: trainedAs.specials.bos,
    eos_token_id: trainedAs.specials.eos,
    pad_token_id: trainedAs.specials.pad,
    use_sliding_window: false,
    torch_dtype: TORCH_DTYPES[trainedAs.precision],
  };
}

const TORCH_DTYPES: Record<Precision, string> = { fp32: 'float32', bf16: 'bfloat16' };

export interface SaveOptions {
  /**
   * A save that runs while training goes on: its files are written one after another and each is
   * hashed, then written, chunk by chunk, so it keeps one thread busy at a time and leaves the
   * other cores to training. Otherwise (a save the caller waits for) everything overlaps: the files
   * are written concurrently and each chunk is hashed while the pool writes it, for speed.
   */
  background?: boolean;
}

/** Writes this rank's part of checkpoint `state.step`; rank 0 also commits it (returns its info). */
export async function saveCheckpoint(
  ctx: SaveContext,
  snapshot: TrainerSnapshot,
  state: RunState,
  options: SaveOptions = {},
): Promise<SavedCheckpoint | undefined> {
  const started = Date.now();
  const tmp = temporaryFolder(ctx.checkpointsDir, state.step);
  await mkdir(tmp, { recursive: true });
  const background = options.background ?? false;
  const writeOptions = { overlap: !background };
  const writes: (() => Promise<[string, FileRecord]>)[] = [
    () =>
      writeOptimizerShard(
        tmp,
        ctx.rank,
        ctx.world,
        {
          begin: ctx.shard.begin,
          end: ctx.shard.end,
          total: ctx.numParameters,
          expAvg: snapshot.expAvg,
          expAvgSq: snapshot.expAvgSq,
        },
        writeOptions,
      ),
  ];
  if (ctx.rank === 0) {
    const tensors = ctx.views.map((v) => ({
      name: v.name,
      dtype: 'F32' as const,
      shape: v.shape,
      data: snapshot.params.subarray(v.offset, v.offset + v.shape.reduce((a, b) => a * b, 1)),
    }));
    writes.push(
      async () => [
        MODEL_FILE,
        await writeSafetensors(join(tmp, MODEL_FILE), tensors, { format: 'pt' }, writeOptions),
      ],
      () => writeJsonFile(tmp, CONFIG_FILE, hfConfig(ctx.config, ctx.trainedAs)),
      () => writeJsonFile(tmp, TRAINER_STATE_FILE, { ...state, adamStep: snapshot.adamStep }),
    );
  }
  const records: [string, FileRecord][] = [];
  if (background) for (const write of writes) records.push(await write());
  else records.push(...(await Promise.all(writes.map((write) => write()))));
  const files: Record<string, FileRecord> = Object.fromEntries(records);
  await writePartRecord(tmp, ctx.rank, files);
  if (ctx.rank !== 0) return undefined;
  const all = await waitForParts(tmp, ctx.world, ctx.partsTimeoutMs);
  const dir = await commitCheckpoint(ctx.checkpointsDir, tmp, {
    step: state.step,
    worldSize: ctx.world,
    jobId: ctx.jobId,
    config: { model: ctx.config, numParameters: ctx.numParameters },
    files: all,
  });
  // Other ranks may already be writing the next step's temporary folder: leave those alone.
  await applyRetention(ctx.checkpointsDir, ctx.retention, { keepTemporary: true });
  const bytes = Object.values(all).reduce((a, r) => a + r.bytes, 0);
  return { step: state.step, dir, bytes, seconds: (Date.now() - started) / 1000 };
}

export interface LoadedCheckpoint {
  params: Float32Array;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  adamStep: number;
  state: RunState;
}

/**
 * Reads what this rank needs from a verified checkpoint: the full parameters, the AdamW moments of
 * its own shard (assembled from the saved shards, whatever the saved world size), the state.
 */
export async function loadCheckpoint(
  dir: string,
  manifest: CheckpointManifest,
  views: ParameterView[],
  numParameters: number,
  shard: { begin: number; end: number },
): Promise<LoadedCheckpoint> {
  const { tensors } = await readSafetensors(join(dir, MODEL_FILE));
  const params = new Float32Array(numParameters);
  for (const v of views) {
    const bytes = tensors.get(v.name);
    const count = v.shape.reduce((a, b) => a * b, 1);
    if (!bytes) throw new Error(`${dir}/${MODEL_FILE}: tensor ${v.name} is missing`);
    if (bytes.byteLength !== count * 4) {
      throw new Error(
        `${dir}/${MODEL_FILE}: tensor ${v.name} has ${bytes.byteLength / 4} values, the model needs ${count}`,
      );
    }
    params.set(asFloat32(bytes), v.offset);
  }
  const moments = await readOptimizerRange(dir, manifest, shard.begin, shard.end);
  if (moments.total !== numParameters) {
    throw new Error(
      `${dir}: optimizer state covers ${moments.total} parameters, the model has ${numParameters}`,
    );
  }
  const state = JSON.parse(await readFile(join(dir, TRAINER_STATE_FILE), 'utf8')) as RunState;
  return { params, expAvg: moments.expAvg, expAvgSq: moments.expAvgSq, adamStep: state.adamStep, state };
}
