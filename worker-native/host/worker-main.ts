// The worker process: one per device, started by the node agent with its RankLaunch in the
// environment. It joins its gang (gloo rendezvous on Redis), builds the native trainer on its
// device budget, resumes from the checkpoint the agent chose (or starts fresh), trains, and
// streams what happens to the orchestrator. Exit 0 when the job (or the planned stop) is done;
// on an error, after saying why on stderr and over telemetry, the code of a failure no restart
// can fix (bad data, bad config, out of memory: failure.ts), else 1.
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { rankLaunchFromEnv, type RankLaunch } from '../../core/rank-launch.js';
import { rankStepsLogPath } from '../../core/run-folder.js';
import { hfCheckpointFolder, loadHfWeights } from '../../checkpoints/hf-weights.js';
import { parseManifest } from '../../checkpoints/manifest.js';
import { applyRetention } from '../../checkpoints/retention.js';
import { openTokenFile } from '../token-file.js';
import type { JobSpec } from '../../core/job-spec.js';
import { sha256File } from '../../checkpoints/commit.js';
import { tokenPathOf, type TokenIndex } from '../../data/index-file.js';
import { PRESET_MAX_POSITIONS } from '../../core/model-config.js';
import '../comm.js';
import { native } from '../native.js';
import '../trainer.js';
import { loadCheckpoint, type RunState } from './checkpoint-io.js';
import { asPermanent, exitCodeFor, markPermanent, permanentKind } from './failure.js';
import { TelemetryClient } from './telemetry-client.js';
import { runTrainingLoop } from './training-loop.js';

/** Host memory an emulated device's offloaded state may use (the node's RAM is the real limit). */
const HOST_BUDGET_BYTES = 64 * 2 ** 30;

/**
 * LONGCTX_GPU_COLLECTIVES, as the agent's environment passes it on: 'auto' (default), 'nccl' or
 * 'staged' (kernels/cuda/device_collectives.h); an ops knob for debugging a NCCL problem.
 */
function gpuCollectives(env: NodeJS.ProcessEnv): 'auto' | 'nccl' | 'staged' {
  const value = env.LONGCTX_GPU_COLLECTIVES ?? 'auto';
  if (value === 'auto' || value === 'nccl' || value === 'staged') return value;
  throw markPermanent(
    new Error(`LONGCTX_GPU_COLLECTIVES must be 'auto', 'nccl' or 'staged', got '${value}'`),
    'bad-config',
  );
}

function log(launch: RankLaunch, message: string): void {
  process.stdout.write(`[${new Date().toISOString()}] rank ${launch.rank}/${launch.worldSize}: ${message}\n`);
}

/** The agent's contract: a rank whose agent is gone exits (its gang is being torn down anyway). */
function exitWithAgent(launch: RankLaunch): void {
  const timer = setInterval(() => {
    if (process.ppid !== launch.agentPid) {
      process.stderr.write(`longctx worker: agent ${launch.agentPid} is gone; exiting\n`);
      process.exit(1);
    }
  }, 500);
  timer.unref();
}

/**
 * Whether the token data differs from what a checkpoint's cursor counted into: its index now
 * records another checksum (re-packed), or the file no longer hashes to it (replaced or edited
 * in place). Reads every byte of the token file, once per resume, on one rank.
 */
async function dataChangeSince(
  savedSha256: string,
  data: { indexPath: string; index: TokenIndex },
  step: number,
): Promise<string | undefined> {
  const tokenPath = tokenPathOf(data.indexPath, data.index);
  const short = (sha: string) => sha.slice(0, 12);
  const consequence = `the cursor of checkpoint step ${step} now points at other tokens than it did when saved (pack to a new path to keep a job's data fixed)`;
  if (data.index.sha256 !== savedSha256)
    return `data ${tokenPath} changed since checkpoint step ${step} was saved: sha256 ${short(savedSha256)}… then, ${short(data.index.sha256)}… now (re-packed); ${consequence}`;
  const actual = await sha256File(tokenPath);
  if (actual !== savedSha256)
    return `data ${tokenPath} no longer matches the sha256 its index and checkpoint step ${step} record (${short(savedSha256)}…, the file hashes to ${short(actual)}…): it was replaced or modified after packing; ${consequence}`;
  return undefined;
}

async function main(): Promise<void> {
  const launch = rankLaunchFromEnv();
  exitWithAgent(launch);
  // Machine-readable step records beside the rank's text log, for analysis and for tests.
  const stepsLog = rankStepsLogPath(launch.runDir, launch.rank);
  await mkdir(dirname(stepsLog), { recursive: true });
  let stepsWritten: Promise<void> = Promise.resolve();
  const spec = JSON.parse(await readFile(launch.specFile, 'utf8')) as JobSpec;
  if (spec.activation_checkpointing === 'auto' || spec.offload === 'auto') {
    throw markPermanent(
      new Error(
        `${launch.specFile}: activation_checkpointing and offload must be resolved by the planner before launch`,
      ),
      'bad-config',
    );
  }
  const telemetry = launch.telemetry.address
    ? new TelemetryClient(
        launch.telemetry.address,
        {
          jobId: launch.jobId,
          attempt: launch.attempt,
          rank: launch.rank,
          worldSize: launch.worldSize,
          token: launch.telemetry.token,
          node: launch.node,
        },
        (kind, message) => log(launch, `orchestrator: ${kind}${message ? ` (${message})` : ''}`),
        { onStatus: (line) => log(launch, line) },
      )
    : undefined;
  try {
    const addon = native();
    addon.setBlasThreads(launch.threads);
    const redis = new URL(launch.rendezvous.redisUrl);
    const comm =
      launch.worldSize > 1
        ? await addon.createCommunicator({
            rank: launch.rank,
            size: launch.worldSize,
            redisHost: redis.hostname,
            redisPort: Number(redis.port || 6379),
            prefix: launch.rendezvous.prefix,
            bindHost: launch.rendezvous.bindHost,
            timeoutMs: 60_000,
          })
        : null;
    log(launch, `joined ${launch.rendezvous.prefix}`);
    const trainerOptions: Parameters<typeof addon.createTrainer>[1] = {
      config: spec.model.config,
      seed: spec.seed,
      deviceBudgetBytes: launch.deviceBudgetBytes,
      hostBudgetBytes: HOST_BUDGET_BYTES,
      // A rank launched on a CUDA device trains there; otherwise on its emulated CPU device.
      ...(launch.deviceKind === 'cuda'
        ? { device: `cuda:${launch.deviceIndex}`, collectives: gpuCollectives(process.env) }
        : {}),
      activationCheckpointing: spec.activation_checkpointing,
      offload: spec.offload,
      optimizer: {
        beta1: spec.optimizer.betas[0],
        beta2: spec.optimizer.betas[1],
        eps: spec.optimizer.eps,
        weightDecay: spec.optimizer.weight_decay,
        gradClip: spec.optimizer.grad_clip,
      },
    };
    const trainer = await asPermanent('bad-config', () => addon.createTrainer(comm, trainerOptions));
    if (trainer.collectives) log(launch, `device collectives: ${trainer.collectives}`);
    const data = await asPermanent('bad-data', () => openTokenFile(spec.data.path));
    if (data.index.tokenizer.vocabSize > spec.model.config.vocab_size) {
      throw markPermanent(
        new Error(
          `${data.indexPath}: tokenizer '${data.index.tokenizer.name}' has ${data.index.tokenizer.vocabSize} ids, more than the model's vocab_size ${spec.model.config.vocab_size}`,
        ),
        'bad-data',
      );
    }
    // A token id past the vocabulary is found when its sequence is read: the same on every attempt.
    const readShard = data.readShard.bind(data);
    data.readShard = (...args) => {
      try {
        return readShard(...args);
      } catch (err) {
        throw markPermanent(err, 'bad-data');
      }
    };
    const views = trainer.parameterViews();
    let dataCheck: Promise<void> = Promise.resolve();
    let state: RunState = {
      step: 0,
      adamStep: 0,
      sequenceCursor: 0,
      tokensSeen: 0,
      lastLoss: 0,
      seed: spec.seed,
      worldSize: launch.worldSize,
      dataSha256: data.index.sha256,
    };
    if (launch.resume) {
      const manifest = parseManifest(
        await readFile(join(launch.resume.dir, 'manifest.json'), 'utf8'),
        launch.resume.dir,
      );
      const loaded = await loadCheckpoint(
        launch.resume.dir,
        manifest,
        views,
        trainer.numParameters,
        trainer.shard,
      );
      trainer.load({
        params: loaded.params,
        expAvg: loaded.expAvg,
        expAvgSq: loaded.expAvgSq,
        adamStep: loaded.adamStep,
      });
      const savedData = loaded.state.dataSha256;
      state = { ...loaded.state, worldSize: launch.worldSize, dataSha256: data.index.sha256 };
      log(
        launch,
        `resumed from ${launch.resume.dir} (step ${state.step}, saved on ${manifest.worldSize} ranks)`,
      );
      // Reported at the step it continues from: this attempt has trained none yet.
      telemetry?.reportEvent(
        'resumed',
        `attempt ${launch.attempt} continues from step ${state.step} (checkpoint saved on ${manifest.worldSize} ranks)`,
        { step: state.step },
      );
      if (launch.rank === 0 && savedData !== undefined) {
        // Hashing a large token file takes a while: training goes on (the other ranks must not
        // wait at the barrier below), and the answer comes when it is ready.
        const from = state.step;
        dataCheck = dataChangeSince(savedData, data, from).then(
          (changed) => {
            if (!changed) return;
            log(launch, `warning: ${changed}`);
            telemetry?.reportEvent('warning', changed, { step: from });
          },
          (err: unknown) => log(launch, `warning: cannot check the data's sha256: ${String(err)}`),
        );
      }
    } else {
      if (spec.model.initWeights !== undefined) {
        const dir = await hfCheckpointFolder(spec.model.initWeights);
        const { params } = await loadHfWeights(dir, spec.model.config, views, trainer.numParameters);
        trainer.load({ params });
        log(launch, `initial weights from the Hugging Face checkpoint ${dir}`);
      }
      telemetry?.reportEvent('started', 'started');
    }
    const retention = {
      keepLast: spec.checkpoint.keep,
      keepEvery: spec.checkpoint.keep_every,
      checkpointEvery: spec.checkpoint.every,
    };
    // Saves of a crashed attempt never became checkpoints: clear them before anyone writes.
    if (launch.rank === 0) await applyRetention(launch.checkpointsDir, retention);
    if (comm) await comm.barrier();

    const final = await runTrainingLoop({
      trainer,
      data,
      seqLen: spec.seq_len,
      gradAccumulation: spec.grad_accumulation,
      schedule: {
        kind: spec.schedule.kind,
        lr: spec.optimizer.lr,
        warmupSteps: spec.schedule.warmup_steps,
        minLr: spec.schedule.min_lr,
        totalSteps: spec.steps,
      },
      checkpointEvery: spec.checkpoint.every,
      save: {
        checkpointsDir: launch.checkpointsDir,
        jobId: launch.jobId,
        rank: launch.rank,
        world: launch.worldSize,
        config: spec.model.config,
        trainedAs: {
          seqLen: spec.seq_len,
          precision: spec.precision,
          specials: data.index.tokenizer.specials,
          ...(spec.model.preset && PRESET_MAX_POSITIONS[spec.model.preset]
            ? { baseMaxPositions: PRESET_MAX_POSITIONS[spec.model.preset] }
            : {}),
        },
        views,
        shard: trainer.shard,
        numParameters: trainer.numParameters,
        retention,
        partsTimeoutMs: 120_000,
      },
      state,
      ...(process.env.LONGCTX_STOP_AFTER_STEP
        ? { stopAfterStep: Number(process.env.LONGCTX_STOP_AFTER_STEP) }
        : {}),
      onStep: (r) => {
        const line = JSON.stringify({ attempt: launch.attempt, ...r }) + '\n';
        stepsWritten = stepsWritten.then(() => appendFile(stepsLog, line));
        log(
          launch,
          `step ${r.step} loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} ${(r.tokens / r.stepSeconds).toFixed(0)} tok/s`,
        );
        telemetry?.reportStep({
          step: r.step,
          loss: r.loss,
          tokens: r.tokens,
          lr: r.lr,
          gradNorm: r.gradNorm,
          stepSeconds: r.stepSeconds,
          ...r.phases,
          deviceBytesCurrent: r.deviceBytesCurrent,
          deviceBytesPeak: r.deviceBytesPeak,
          hostBytes: r.hostBytes,
          bytesSent: r.bytesSent,
        });
      },
      onCheckpoint: (saved) => {
        log(
          launch,
          `checkpoint step ${saved.step} saved to ${saved.dir} (${(saved.bytes / 2 ** 20).toFixed(1)} MiB in ${saved.seconds.toFixed(2)} s)`,
        );
        telemetry?.reportEvent('checkpoint-saved', `checkpoint ${saved.step}`, {
          checkpoint: { step: saved.step, path: saved.dir, bytes: saved.bytes, saveSeconds: saved.seconds },
        });
      },
    });
    await stepsWritten;
    await dataCheck;
    trainer.close();
    data.close();
    await comm?.close();
    log(launch, `finished at step ${final.step}`);
    telemetry?.reportEvent('finished', `finished at step ${final.step}`);
  } catch (err) {
    telemetry?.reportEvent('error', err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    await telemetry?.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    const kind = permanentKind(err);
    process.stderr.write(
      `longctx worker: ${kind ? `${kind} (not retried): ` : ''}${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(exitCodeFor(err));
  },
);
