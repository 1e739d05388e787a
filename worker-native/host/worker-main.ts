// The worker process: one per device, started by the node agent with its RankLaunch in the
// environment. It joins its gang (gloo rendezvous on Redis), builds the native trainer on its
// device budget, resumes from the checkpoint the agent chose (or starts fresh), trains, and
// streams what happens to the orchestrator. Exit 0 when the job (or the planned stop) is done;
// 1 on any error, after saying why on stderr and over telemetry.
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { rankLaunchFromEnv, type RankLaunch } from '../../cluster/rank-launch.js';
import { parseManifest } from '../../checkpoints/manifest.js';
import { applyRetention } from '../../checkpoints/retention.js';
import { openTokenFile } from '../../data/token-file.js';
import type { JobSpec } from '../../orchestrator/spec/job-spec.js';
import { longctx } from '../../proto/services.js';
import '../comm.js';
import { native } from '../native.js';
import '../trainer.js';
import { loadCheckpoint, type RunState } from './checkpoint-io.js';
import { TelemetryClient } from './telemetry-client.js';
import { runTrainingLoop } from './training-loop.js';

/** Host memory an emulated device's offloaded state may use (the node's RAM is the real limit). */
const HOST_BUDGET_BYTES = 64 * 2 ** 30;

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

async function main(): Promise<void> {
  const launch = rankLaunchFromEnv();
  exitWithAgent(launch);
  // Machine-readable step records beside the rank's text log, for analysis and for tests.
  const stepsLog = join(launch.runDir, 'logs', `rank-${launch.rank}.steps.jsonl`);
  await mkdir(join(launch.runDir, 'logs'), { recursive: true });
  let stepsWritten: Promise<void> = Promise.resolve();
  const spec = JSON.parse(await readFile(launch.specFile, 'utf8')) as JobSpec;
  if (spec.activation_checkpointing === 'auto' || spec.offload === 'auto') {
    throw new Error(
      `${launch.specFile}: activation_checkpointing and offload must be resolved by the planner before launch`,
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
      )
    : undefined;
  const Kind = longctx.WorkerEvent.Kind;
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
            timeoutMs: 60_000,
          })
        : null;
    log(launch, `joined ${launch.rendezvous.prefix}`);
    const trainer = await addon.createTrainer(comm, {
      config: spec.model.config,
      seed: spec.seed,
      deviceBudgetBytes: launch.deviceBudgetBytes,
      hostBudgetBytes: HOST_BUDGET_BYTES,
      // A rank launched on a CUDA device trains there; otherwise on its emulated CPU device.
      ...(launch.deviceKind === 'cuda' ? { device: `cuda:${launch.deviceIndex}` } : {}),
      activationCheckpointing: spec.activation_checkpointing,
      offload: spec.offload,
      optimizer: {
        beta1: spec.optimizer.betas[0],
        beta2: spec.optimizer.betas[1],
        eps: spec.optimizer.eps,
        weightDecay: spec.optimizer.weight_decay,
        gradClip: spec.optimizer.grad_clip,
      },
    });
    const data = await openTokenFile(spec.data.path);
    const views = trainer.parameterViews();
    let state: RunState = {
      step: 0,
      adamStep: 0,
      sequenceCursor: 0,
      tokensSeen: 0,
      lastLoss: 0,
      seed: spec.seed,
      worldSize: launch.worldSize,
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
      state = { ...loaded.state, worldSize: launch.worldSize };
      log(
        launch,
        `resumed from ${launch.resume.dir} (step ${state.step}, saved on ${manifest.worldSize} ranks)`,
      );
      telemetry?.reportEvent(Kind.KIND_RESUMED, `resumed from step ${state.step}`);
    } else {
      telemetry?.reportEvent(Kind.KIND_STARTED, 'started');
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
          phases: {
            compute: r.phases.compute,
            commWait: r.phases.commWait,
            data: r.phases.data,
            optimizer: r.phases.optimizer,
            checkpoint: r.phases.checkpoint,
          },
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
        telemetry?.reportEvent(Kind.KIND_CHECKPOINT_SAVED, `checkpoint ${saved.step}`, {
          checkpoint: {
            step: saved.step,
            path: saved.dir,
            bytes: saved.bytes,
            saveSeconds: saved.seconds,
            valid: true,
            writtenAtMs: Date.now(),
          },
        });
      },
    });
    await stepsWritten;
    trainer.close();
    data.close();
    await comm?.close();
    log(launch, `finished at step ${final.step}`);
    telemetry?.reportEvent(Kind.KIND_FINISHED, `finished at step ${final.step}`);
  } catch (err) {
    telemetry?.reportEvent(Kind.KIND_ERROR, err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    await telemetry?.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`longctx worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
