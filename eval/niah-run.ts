// Runs NIAH cases on a checkpoint: one forward pass per case, no KV cache, the sequence cut into
// the zigzag ring's shards across ranks exactly as training cuts it (so a context too long for one
// device's memory is evaluated by several). One rank runs in this process; N ranks are N processes
// (eval/niah-rank-main.ts) that meet through gloo on a private Redis, as training ranks do.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startEmbeddedRedis } from '../cluster/embedded-redis.js';
import {
  hfCheckpointFolder,
  loadHfWeights,
  readHfModelConfig,
  type HfModelConfig,
} from '../checkpoints/hf-weights.js';
import type { Communicator } from '../worker-native/comm.js';
import '../worker-native/comm.js';
import { RankGroup } from '../worker-native/host/rank-processes.js';
import { createTrainer, type Trainer } from '../worker-native/trainer.js';
import { zigzagPositions } from '../core/zigzag.js';
import type { NiahCase } from './niah-cases.js';
import { foundFromCounts, type NiahCaseResult } from './niah-score.js';
import { EmbeddingReaders } from './vniah-embeddings.js';

export interface NiahModelOptions {
  /** A checkpoint folder: ours (runs/JOB/checkpoints/step-N) or a Hugging Face one; both hold config.json. */
  checkpoint: string;
  /** Evaluate with this RoPE base instead of the checkpoint's (e.g. raised for a longer context). */
  ropeTheta?: number;
  /** Each rank's device budget (default 8 GiB). */
  deviceBudgetBytes?: number;
  /** Tokens per cross-entropy chunk (default 256). */
  ceChunkTokens?: number;
}

export interface NiahRunOptions extends NiahModelOptions {
  ranks: number;
  /** Called after each case (on rank 0's results). */
  onCase?: (result: NiahCaseResult, index: number, total: number) => void;
}

const GiB = 2 ** 30;

/** The model of a checkpoint folder, with an optional RoPE base override. */
export async function evalModelConfig(o: NiahModelOptions): Promise<HfModelConfig> {
  const dir = await hfCheckpointFolder(o.checkpoint);
  const config = await readHfModelConfig(dir);
  return o.ropeTheta === undefined ? config : { ...config, rope_theta: o.ropeTheta };
}

/** This rank's trainer holding the checkpoint's weights. */
export async function evalTrainer(
  comm: Communicator | null,
  o: NiahModelOptions,
  rank = 0,
): Promise<Trainer> {
  const dir = await hfCheckpointFolder(o.checkpoint);
  const config = await evalModelConfig(o);
  const trainer = await createTrainer(comm, {
    config,
    seed: 0,
    deviceBudgetBytes: o.deviceBudgetBytes ?? 8 * GiB,
    hostBudgetBytes: 64 * GiB,
    activationCheckpointing: 'none',
    offload: 'none',
    // Unused: evaluation never steps.
    optimizer: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, gradClip: 0 },
    ceChunkTokens: o.ceChunkTokens ?? 256,
    device: `cpu:${rank}`,
  });
  try {
    const { params } = await loadHfWeights(dir, config, trainer.parameterViews(), trainer.numParameters);
    trainer.load({ params });
  } catch (e) {
    trainer.close();
    throw e;
  }
  return trainer;
}

/** Every case on this rank's zigzag shard; the counts are summed over ranks, so all ranks agree. */
export async function runCases(
  trainer: Trainer,
  cases: NiahCase[],
  onCase?: (result: NiahCaseResult, index: number) => void,
): Promise<NiahCaseResult[]> {
  // V-NIAH's embedding rows: each rank reads those of its own chunks.
  const readers = new EmbeddingReaders(hiddenSize(trainer));
  try {
    return await evaluateCases(trainer, cases, readers, onCase);
  } finally {
    await readers.close();
  }
}

/** The model's hidden size: the width of its token embedding table. */
function hiddenSize(trainer: Trainer): number {
  const embed = trainer.parameterViews().find((v) => v.name === 'model.embed_tokens.weight');
  if (!embed) throw new Error('the trainer has no model.embed_tokens.weight');
  return embed.shape[1]!;
}

async function evaluateCases(
  trainer: Trainer,
  cases: NiahCase[],
  readers: EmbeddingReaders,
  onCase?: (result: NiahCaseResult, index: number) => void,
): Promise<NiahCaseResult[]> {
  const results: NiahCaseResult[] = [];
  for (const [index, c] of cases.entries()) {
    const positions = zigzagPositions(c.contextLength, trainer.world, trainer.rank);
    const ids = Int32Array.from(positions, (p) => c.ids[p]!);
    const labels = Int32Array.from(positions, (p) => c.labels[p]!);
    const embeddings = c.embeddings
      ? await readers.shard(c.embeddings, c.contextLength, trainer.world, trainer.rank)
      : undefined;
    const r = await trainer.evaluate(ids, positions, labels, embeddings);
    const result: NiahCaseResult = {
      contextLength: c.contextLength,
      depth: c.depth,
      needlePosition: c.needleStart / c.contextLength,
      key: c.key,
      found: foundFromCounts(r, c.answerTokens),
      answerCorrect: r.globalArgmaxCorrect,
      answerTokens: c.answerTokens,
      answerLoss: r.loss,
    };
    results.push(result);
    onCase?.(result, index);
  }
  return results;
}

/** What a rank process is given (as JSON in a file). */
export interface NiahRankJob extends NiahModelOptions {
  rank: number;
  world: number;
  redisPort: number;
  prefix: string;
  casesFile: string;
}

/** Cases as JSON, the token arrays in base64. */
export function encodeCases(cases: NiahCase[]): string {
  const b64 = (a: Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
  return JSON.stringify(cases.map((c) => ({ ...c, ids: b64(c.ids), labels: b64(c.labels) })));
}

export function decodeCases(text: string): NiahCase[] {
  const i32 = (s: string) => {
    const bytes = Buffer.from(s, 'base64');
    return new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  };
  return (JSON.parse(text) as Array<NiahCase & { ids: string; labels: string }>).map((c) => ({
    ...c,
    ids: i32(c.ids),
    labels: i32(c.labels),
  }));
}

const RANK_MAIN = fileURLToPath(new URL('./niah-rank-main.js', import.meta.url));

/** Evaluates the cases on `ranks` ranks; returns rank 0's results (every rank has the same). */
export async function evaluateNiah(cases: NiahCase[], o: NiahRunOptions): Promise<NiahCaseResult[]> {
  if (!Number.isSafeInteger(o.ranks) || o.ranks < 1)
    throw new RangeError(`ranks must be >= 1, got ${o.ranks}`);
  const onCase = o.onCase ? (r: NiahCaseResult, i: number) => o.onCase!(r, i, cases.length) : undefined;
  if (o.ranks === 1) {
    const trainer = await evalTrainer(null, o);
    try {
      return await runCases(trainer, cases, onCase);
    } finally {
      trainer.close();
    }
  }
  const dir = await mkdtemp(join(tmpdir(), 'longctx-niah-'));
  const redis = await startEmbeddedRedis();
  let group: RankGroup | undefined;
  try {
    const casesFile = join(dir, 'cases.json');
    await writeFile(casesFile, encodeCases(cases));
    const prefix = `niah-${process.pid}-${Date.now()}`;
    const jobs: NiahRankJob[] = Array.from({ length: o.ranks }, (_, rank) => ({
      checkpoint: o.checkpoint,
      ...(o.ropeTheta !== undefined ? { ropeTheta: o.ropeTheta } : {}),
      ...(o.deviceBudgetBytes !== undefined ? { deviceBudgetBytes: o.deviceBudgetBytes } : {}),
      ...(o.ceChunkTokens !== undefined ? { ceChunkTokens: o.ceChunkTokens } : {}),
      rank,
      world: o.ranks,
      redisPort: redis.port,
      prefix,
      casesFile,
    }));
    for (const job of jobs) await writeFile(join(dir, `rank-${job.rank}.json`), JSON.stringify(job));
    const g = new RankGroup({
      script: RANK_MAIN,
      ranks: jobs.map((j) => j.rank),
      args: (r) => [join(dir, `rank-${r}.json`)],
    });
    group = g;
    // Progress: rank 0 reports each case as it finishes.
    let seen = 0;
    const progress = (async () => {
      for (;;) {
        const m = await g.message(0, (msg) => msg.case === seen || msg.done === true).catch(() => undefined);
        if (!m || m.done === true) return;
        onCase?.(m.result as NiahCaseResult, seen);
        seen++;
      }
    })();
    // A rank that fails leaves the others waiting in a collective: end them all at once.
    for (const job of jobs) {
      void g.exit(job.rank).then((e) => (e.code !== 0 ? g.stop() : undefined));
    }
    const exits = await g.exited();
    await progress;
    const failed = exits.find((e) => e.code !== 0 && e.signal === null) ?? exits.find((e) => e.code !== 0);
    if (failed) {
      const error = failed.messages.find((m) => m.ok === false)?.error;
      const said = typeof error === 'string' ? error : failed.stderr.trim();
      throw new Error(`NIAH rank ${failed.rank} failed: ${said || `exit ${failed.code ?? failed.signal}`}`);
    }
    const final = exits[0]!.messages.find((m) => m.done === true);
    if (!final) throw new Error('NIAH rank 0 exited without its results');
    return final.results as NiahCaseResult[];
  } finally {
    await group?.stop();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
