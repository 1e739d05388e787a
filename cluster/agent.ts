// The node agent: one per node. It announces the node's devices under a lease it renews (a node
// whose lease expires is dead to the scheduler, which then recovers its jobs), consumes the
// node's BullMQ queue of placed jobs, and runs each job as a gang: one worker process per
// allocated device. A gang that spans nodes is run by the agent of each node, each starting its
// share of the ranks (global rank ids, one world size, one rendezvous); it succeeds when the last
// share has, and when any share ends otherwise the attempt ends for all (end-attempt tells the
// other agents, which stop their shares) and the job is placed again whole. The queue's Worker
// holds a lock on every job it runs and renews it; if the agent dies the lock lapses, BullMQ's
// stalled-job check brings the job back, and whichever agent serves the node next finds the
// attempt was lost and sends it to recovery (it is placed again).
//
// No rank outlives its gang: ranks run in their own process groups, which the agent kills when the
// gang ends for any reason, when the agent stops (SIGTERM/SIGINT via installSignalHandlers), and,
// with SIGKILL, when the agent's process exits. For an agent killed outright, its gangs' process
// groups are recorded in Redis and the next agent of the node kills what is left of them (after
// checking the processes really are those ranks); ranks also exit when their parent changes.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';

import { chooseResumeCheckpoint } from '../checkpoints/validate.js';
import {
  DEFAULT_BACKOFF,
  finishAttempt,
  type AttemptOutcome,
  type BackoffPolicy,
} from '../control/recovery.js';
import type { JobRecord, JobShare } from '../control/job-record.js';
import { subscriberConnection } from '../control/events.js';
import { nodeQueueName } from '../control/keys.js';
import { PendingQueue, type AttemptRef } from '../control/pending.js';
import { ControlStore } from '../control/store.js';
import { repoRoot } from '../core/repo-root.js';
import { TelemetryHistory } from '../control/telemetry-history.js';
import { Gang, type GangResult, type RankProcess } from './gang.js';
import { DEFAULT_RANK_ADDRESS, type NodeInventory } from './inventory.js';
import { groupRunsAttempt, terminateGroups } from './process-groups.js';
import { expireRendezvousKeys } from './rendezvous-keys.js';
import { permanentFailureOfExit, rendezvousPrefix, type RankLaunch } from '../core/rank-launch.js';
import { attemptDir, runFolder } from '../core/run-folder.js';

/** The worker host the agent starts per rank unless told otherwise (relative to `cwd`). */
export const DEFAULT_WORKER_COMMAND = ['node', 'dist/worker-native/host/worker-main.js'];

/** How often a running job's progress is copied onto its node-queue entry (for bull-board). */
const PROGRESS_MS = 1000;

export interface AgentOptions {
  /** Connection for commands and BullMQ (create it with connectRedis: no per-command retry limit). */
  redis: Redis;
  /** The same Redis as a URL, handed to the ranks for their rendezvous. */
  redisUrl: string;
  prefix?: string;
  inventory: NodeInventory;
  /** Address (host:port) of the orchestrator's Telemetry service, handed to the ranks. */
  telemetryAddress: string;
  workerCommand?: string[];
  /** Working directory of the ranks (default: the repository root). */
  cwd?: string;
  /** Where runs/<job> folders go (default: <cwd>/runs). */
  runsDir?: string;
  /** Extra environment for the ranks. */
  env?: Record<string, string>;
  /** The node's lease: renewed every leaseMs/3; the node is dead to the scheduler once it lapses. */
  leaseMs?: number;
  /** How long to wait at start for a previous agent's lease on this node to lapse. */
  leaseWaitMs?: number;
  /** How long a node's inventory is remembered after its last heartbeat. */
  forgetMs?: number;
  /** BullMQ lock on a running job, renewed every half; an agent silent this long has lost it. */
  lockDurationMs?: number;
  /** How often the node's Worker looks for jobs whose lock lapsed. */
  stalledIntervalMs?: number;
  /** SIGTERM → SIGKILL grace when stopping a gang. */
  graceMs?: number;
  backoff?: BackoffPolicy;
  log?: (line: string) => void;
}

/** Why a gang was stopped from outside: decides what its attempt's outcome is. */
type StopCause = 'cancel' | 'watchdog' | 'agent-stopped' | 'superseded';

interface RunningGang {
  job: JobRecord;
  gang: Gang;
  cause?: StopCause;
  /** Settles when process() is done with this attempt (its end recorded, its gang forgotten). */
  over: Promise<void>;
}

export interface GangStatus {
  jobId: string;
  attempt: number;
  ranks: RankProcess[];
}

export class NodeAgent {
  /** Unique per agent process: the node's lease holds it, jobs record which agent took them. */
  readonly id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly store: ControlStore;
  readonly node: string;
  private readonly pending: PendingQueue;
  private readonly running = new Map<string, RunningGang>();
  private readonly leaseMs: number;
  private readonly graceMs: number;
  private readonly cwd: string;
  private readonly runsDir: string;
  private readonly log: (line: string) => void;
  private readonly history: TelemetryHistory;
  private worker?: Worker<AttemptRef>;
  private subscriber?: Redis;
  private heartbeat?: NodeJS.Timeout;
  private stopping = false;
  private readonly onExit = () => this.killAllNow();

  constructor(private readonly options: AgentOptions) {
    this.store = new ControlStore(options.redis, options.prefix);
    this.history = new TelemetryHistory(options.redis, this.store.keys);
    this.pending = new PendingQueue(options.redis, this.store.keys.prefix);
    this.node = options.inventory.node;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.graceMs = options.graceMs ?? 10_000;
    this.cwd = options.cwd ?? repoRoot;
    this.runsDir = resolve(this.cwd, options.runsDir ?? 'runs');
    this.log = options.log ?? ((line) => console.log(`agent ${this.node}: ${line}`));
  }

  /**
   * Takes the node's lease (waiting for a previous agent's to lapse), kills what is left of
   * gangs started by earlier agents of this node, then starts taking placed jobs.
   */
  async start(): Promise<void> {
    const deadline = Date.now() + (this.options.leaseWaitMs ?? this.leaseMs + 5000);
    for (;;) {
      const result = await this.register();
      if (result.ok) break;
      if (Date.now() > deadline) {
        throw new Error(
          `node ${this.node} is served by another agent (${result.holder}); its lease did not lapse`,
        );
      }
      await sleep(Math.min(250, this.leaseMs / 4));
    }
    process.on('exit', this.onExit);
    await this.reapOrphans();
    this.heartbeat = setInterval(
      () => void this.beat().catch((err) => this.log(`heartbeat: ${String(err)}`)),
      this.leaseMs / 3,
    );

    const subscriber = subscriberConnection(this.options.redis);
    this.subscriber = subscriber;
    subscriber.on('message', (_channel: string, message: string) => this.onControl(message));
    await subscriber.subscribe(this.store.keys.nodeControl(this.node));

    const lockDuration = this.options.lockDurationMs ?? 30_000;
    this.worker = new Worker<AttemptRef>(nodeQueueName(this.node), (job) => this.process(job), {
      connection: this.options.redis,
      prefix: this.store.keys.prefix,
      // Every job needs at least one device, so the node never runs more jobs than devices.
      concurrency: this.options.inventory.devices.length,
      lockDuration,
      stalledInterval: this.options.stalledIntervalMs ?? lockDuration / 2,
      // A stalled job is always handed back (never failed by BullMQ): the attempt guards decide.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
      drainDelay: 1,
    });
    this.worker.on('error', (err) => this.log(`queue worker: ${err.message}`));
    this.log(
      `serving ${this.options.inventory.devices.length} ${this.options.inventory.kind} devices as ${this.id}`,
    );
    if (this.options.inventory.collectives)
      this.log(`GPU collectives: ${this.options.inventory.collectives}`);
  }

  /**
   * Stops every gang (their attempts go to recovery without counting against max_restarts),
   * stops taking jobs, and gives up the node's lease.
   */
  async stop(reason = 'the node agent was stopped'): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const closing = this.worker?.close();
    await Promise.all([...this.running.values()].map((r) => this.stopRunning(r, 'agent-stopped', reason)));
    await closing;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.subscriber?.quit();
    await this.store.releaseLease(this.node, this.id);
    await this.pending.close();
    process.off('exit', this.onExit);
    this.log(`stopped: ${reason}`);
  }

  /**
   * Stops a job's gang because it hangs (the watchdog's call): the attempt fails and goes to
   * recovery. Returns false when the job has no gang on this node.
   */
  async stopGang(jobId: string, reason: string): Promise<boolean> {
    const running = this.running.get(jobId);
    if (!running) return false;
    await this.stopRunning(running, 'watchdog', reason);
    return true;
  }

  /** The gangs running on this node now. */
  gangs(): GangStatus[] {
    return [...this.running.values()].map((r) => ({
      jobId: r.job.id,
      attempt: r.job.attempt,
      ranks: r.gang.ranks.map((rank) => ({ ...rank })),
    }));
  }

  /**
   * SIGTERM/SIGINT/SIGHUP stop the agent (and its gangs) and exit the process; a second signal kills
   * the gangs at once. Returns a function that removes the handlers.
   */
  installSignalHandlers(): () => void {
    let signalled = false;
    const handler = (signal: NodeJS.Signals) => {
      if (signalled) {
        this.killAllNow();
        process.exit(1);
      }
      signalled = true;
      this.stop(`the node agent received ${signal}`).then(
        () => process.exit(0),
        (err) => {
          this.log(`stopping after ${signal}: ${String(err)}`);
          this.killAllNow();
          process.exit(1);
        },
      );
    };
    const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
    for (const signal of signals) process.on(signal, handler);
    return () => {
      for (const signal of signals) process.off(signal, handler);
    };
  }

  private killAllNow(): void {
    for (const r of this.running.values()) r.gang.killNow();
  }

  private register() {
    return this.store.registerNode(
      this.options.inventory,
      this.id,
      this.leaseMs,
      this.options.forgetMs ?? 24 * 3600_000,
      Date.now(),
    );
  }

  /** Renews the lease and checks each gang's job is still this agent's to run, and not cancelled. */
  private async beat(): Promise<void> {
    if (this.stopping) return;
    const lease = await this.register();
    for (const running of this.running.values()) {
      const job = await this.store.getJob(running.job.id);
      const ours =
        lease.ok &&
        job !== undefined &&
        (job.state === 'PLACED' || job.state === 'RUNNING') &&
        job.attempt === running.job.attempt &&
        shareOf(job, this.node)?.agent === this.id;
      if (!ours) void this.stopRunning(running, 'superseded', 'the attempt is no longer this agent’s');
      else if (job.cancelRequested) void this.stopRunning(running, 'cancel', 'cancelled');
    }
  }

  private onControl(message: string): void {
    let command: { type?: string; jobId?: string; attempt?: number; reason?: string };
    try {
      command = JSON.parse(message) as typeof command;
    } catch {
      return;
    }
    const running = command.jobId ? this.running.get(command.jobId) : undefined;
    if (command.type === 'cancel' && running && running.job.attempt === command.attempt) {
      void this.stopRunning(running, 'cancel', 'cancelled');
    }
    // The orchestrator's watchdog saw this attempt hang (no heartbeat or no step progress).
    if (command.type === 'hung' && running && running.job.attempt === command.attempt) {
      void this.stopRunning(running, 'watchdog', command.reason ?? 'hung');
    }
    // The attempt ended on another node of the gang: this share cannot go on without it.
    if (command.type === 'ended' && running && running.job.attempt === command.attempt) {
      void this.stopRunning(running, 'superseded', `the attempt ended elsewhere: ${command.reason ?? ''}`);
    }
  }

  private async stopRunning(running: RunningGang, cause: StopCause, reason: string): Promise<void> {
    running.cause ??= cause;
    await running.gang.stop(reason, { immediate: cause === 'watchdog' }).catch(() => undefined);
  }

  /** Kills what is left of gangs that earlier agents of this node started (checked by environment). */
  private async reapOrphans(): Promise<void> {
    for (const gang of await this.store.gangs(this.node)) {
      if (gang.agent === this.id) continue;
      const groups = gang.pgids.filter((pgid) => groupRunsAttempt(pgid, gang.jobId, gang.attempt));
      if (groups.length > 0) {
        this.log(`killing ${groups.length} leftover rank groups of ${gang.jobId} attempt ${gang.attempt}`);
        await terminateGroups(groups, this.graceMs);
      }
      await this.store.forgetGang(this.node, gang.jobId, gang.attempt);
    }
  }

  /** Runs one placed attempt to its end (the BullMQ processor). */
  private async process(bullJob: Job<AttemptRef>): Promise<string> {
    const { jobId, attempt } = bullJob.data;
    const claim = await this.store.claimJob(jobId, this.node, attempt, this.id, Date.now());
    if (claim === 'stale') return 'stale';
    const job = await this.store.getJob(jobId);
    const share = job && shareOf(job, this.node);
    if (!job || !share) return 'stale';
    if (claim === 'lost') {
      // An earlier agent of this node took this attempt and is gone (its lock lapsed).
      await this.reapOrphans();
      await this.finish(job, {
        kind: 'failed',
        cause: 'agent-lost',
        message: `the agent of node ${this.node} was lost during attempt ${attempt}`,
      });
      return 'lost';
    }
    if (claim === 'cancelled') {
      await this.finish(job, { kind: 'cancelled', message: 'cancelled before its ranks started' });
      return 'cancelled';
    }
    if (this.stopping) {
      await this.finish(job, {
        kind: 'failed',
        cause: 'agent-stopped',
        message: 'the node agent is stopping',
      });
      return 'agent-stopped';
    }

    // An earlier attempt of this job may still be stopping here (it ended on another node of its
    // gang): its ranks go before the new ones start.
    const previous = this.running.get(jobId);
    if (previous) {
      await this.stopRunning(previous, 'superseded', `attempt ${attempt} replaces it`);
      await previous.over;
    }

    let gang: Gang;
    try {
      gang = await this.launch(job, share);
    } catch (err) {
      await this.finish(job, { kind: 'failed', cause: 'launch-failed', message: (err as Error).message });
      return 'launch-failed';
    }
    let over!: () => void;
    const running: RunningGang = { job, gang, over: new Promise((r) => (over = r)) };
    this.running.set(jobId, running);
    try {
      await this.store.recordGang(this.node, { jobId, attempt, agent: this.id, pgids: gang.pgids() });
      const marked = await this.store.markRunning(
        jobId,
        this.node,
        attempt,
        this.id,
        gang.ranks.map((r) => r.pid),
        Date.now(),
      );
      if (!marked) void this.stopRunning(running, 'superseded', 'the attempt ended before its ranks started');
      else if ((await this.store.getJob(jobId))?.cancelRequested)
        void this.stopRunning(running, 'cancel', 'cancelled');
      if (this.stopping) void this.stopRunning(running, 'agent-stopped', 'the node agent is stopping');

      const progress = setInterval(() => void this.mirrorProgress(bullJob, job), PROGRESS_MS);
      let result: GangResult;
      try {
        result = await gang.done;
      } catch (err) {
        result = { kind: 'stopped', reason: (err as Error).message };
        running.cause ??= 'watchdog';
      } finally {
        clearInterval(progress);
      }
      await this.mirrorProgress(bullJob, job);
      const outcome = this.outcomeOf(result, running.cause);
      // A gang spanning nodes has succeeded when its last share has: the agent of that node ends it.
      if (outcome?.kind === 'succeeded' && job.shares.length > 1) {
        const shares = await this.store.shareSucceeded(jobId, this.node, attempt);
        if (shares !== 'all') {
          this.log(`${jobId} attempt ${attempt}: this node's ranks finished (${shares})`);
          return result.kind;
        }
      }
      if (outcome) await this.finish(job, outcome);
      return result.kind;
    } finally {
      if (this.running.get(jobId) === running) this.running.delete(jobId);
      await this.store.forgetGang(this.node, jobId, attempt);
      await expireRendezvousKeys(this.options.redis, rendezvousPrefix(jobId, attempt)).catch((err) =>
        this.log(`${jobId}: rendezvous keys: ${String(err)}`),
      );
      over();
    }
  }

  /**
   * Copies the job's progress (step, total, loss), as its telemetry recorded it, onto its entry in
   * the node queue, where BullMQ tools (bull-board) show it.
   */
  private async mirrorProgress(bullJob: Job<AttemptRef>, job: JobRecord): Promise<void> {
    try {
      const p = await this.history.progress(job.id);
      if (!p || p.step === (bullJob.progress as { step?: number } | undefined)?.step) return;
      const totalSteps = job.spec.steps;
      await bullJob.updateProgress({
        step: p.step,
        totalSteps,
        loss: p.loss,
        attempt: p.attempt,
        percent: Math.round((100 * p.step) / Math.max(1, totalSteps)),
      });
    } catch {
      // Only a display: a lost lock or a Redis hiccup must not disturb the gang.
    }
  }

  private outcomeOf(result: GangResult, cause: StopCause | undefined): AttemptOutcome | undefined {
    if (result.kind === 'succeeded') return { kind: 'succeeded' };
    if (result.kind === 'failed') {
      // The rank's exit code says whether a restart could help (bad data, config, OOM: no).
      const cause = permanentFailureOfExit(result.exitCode) ?? 'rank-failed';
      return { kind: 'failed', cause, message: result.message };
    }
    switch (cause) {
      case 'cancel':
        return { kind: 'cancelled', message: 'cancelled; ranks stopped' };
      case 'agent-stopped':
        return { kind: 'failed', cause: 'agent-stopped', message: result.reason };
      case 'superseded':
        return undefined; // someone else already ended this attempt
      default:
        return { kind: 'failed', cause: 'watchdog', message: `stopped by the watchdog: ${result.reason}` };
    }
  }

  private async finish(job: JobRecord, outcome: AttemptOutcome): Promise<void> {
    const applied = await finishAttempt(this.store, this.pending, job, outcome, {
      backoff: this.options.backoff ?? DEFAULT_BACKOFF,
      ifLost: outcome.kind === 'failed' && outcome.cause === 'agent-lost',
      node: this.node,
    });
    this.log(`${job.id} attempt ${job.attempt}: ${applied ?? 'already ended'} (${describe(outcome)})`);
  }

  /** Writes the run folder and starts one rank per device of this node's share of the gang. */
  private async launch(job: JobRecord, share: JobShare): Promise<Gang> {
    const inventory = this.options.inventory;
    const folder = runFolder(this.runsDir, job.id);
    const { dir: runDir, checkpointsDir, specJson: specFile } = folder;
    await mkdir(checkpointsDir, { recursive: true });
    await writeFile(specFile, JSON.stringify(job.spec, null, 2) + '\n');
    await writeFile(folder.specYaml, job.specYaml);
    // One choice for the whole gang: every rank must resume from the same step. The agent of a
    // gang's node that chooses first decides for the agents of its other nodes.
    const resume = await chooseResumeCheckpoint(checkpointsDir);
    for (const warning of resume.warnings) this.log(`${job.id}: ${warning}`);
    const mine = resume.checkpoint ? { step: resume.checkpoint.step, dir: resume.checkpoint.dir } : null;
    const agreed = job.shares.length > 1 ? await this.store.agreeResume(job.id, job.attempt, mine) : mine;
    if (!job.token) throw new Error(`job ${job.id} attempt ${job.attempt} has no telemetry token`);
    const launches: RankLaunch[] = share.devices.map((deviceIndex, i) => {
      const device = inventory.devices.find((d) => d.index === deviceIndex);
      if (!device) throw new Error(`device ${deviceIndex} is not in node ${this.node}'s inventory`);
      return {
        jobId: job.id,
        jobName: job.name,
        attempt: job.attempt,
        rank: share.firstRank + i,
        worldSize: job.devices,
        node: this.node,
        deviceKind: inventory.kind,
        // The CUDA device the rank drives (several devices may be one GPU: ranks_per_gpu).
        deviceIndex: device.ordinal ?? deviceIndex,
        deviceBudgetBytes:
          inventory.kind === 'cpu' && job.spec.device_memory ? job.spec.device_memory : device.memoryBytes,
        threads: inventory.threadsPerDevice,
        rendezvous: {
          redisUrl: this.options.redisUrl,
          prefix: rendezvousPrefix(job.id, job.attempt),
          bindHost: inventory.address ?? DEFAULT_RANK_ADDRESS,
        },
        telemetry: { address: this.options.telemetryAddress, token: job.token! },
        runDir,
        checkpointsDir,
        specFile,
        resume: agreed ?? undefined,
        agentPid: process.pid,
      };
    });
    return Gang.launch(launches, {
      command: this.options.workerCommand ?? DEFAULT_WORKER_COMMAND,
      cwd: this.cwd,
      env: { ...process.env, ...this.options.env },
      logDir: folder.logsDir,
      launchDir: attemptDir(runDir, job.attempt),
      graceMs: this.graceMs,
    });
  }
}

/** This node's share of a job's current (or last) placement. */
function shareOf(job: JobRecord, node: string): JobShare | undefined {
  return job.shares.find((s) => s.node === node);
}

function describe(outcome: AttemptOutcome): string {
  return outcome.kind === 'succeeded' ? 'all ranks finished' : outcome.message;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
