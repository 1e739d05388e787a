// The Control gRPC service: what the CLI and the dashboard ask of the orchestrator. Submitting a
// job runs every check before anything is queued: the spec itself (orchestrator/spec), its data
// file, the nodes that could run it, and the planner's memory verdict; `auto` policies are
// resolved here, so the workers receive a concrete plan.
import {
  Metadata,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { checkDataFile } from '../../data/validate.js';
import { longctx } from '../../proto/services.js';
import { cpuProfile, gpuProfileFor, type DeviceProfile } from '../plan/devices.js';
import type { PlanStore } from '../plan/plan-store.js';
import { maxContext, planJob, type PlanResult } from '../plan/planner.js';
import type { JobQueue } from '../queue/job-queue.js';
import { fromProtoJobState, isTerminal, toJobSummary, type JobRecord } from '../queue/job-record.js';
import type { NodeStatus } from '../queue/store.js';
import type { FieldError, JobSpec } from '../spec/job-spec.js';
import { parseSpec } from '../spec/validate.js';
import type { TelemetryHistory, TelemetryUpdate, WorkerEventRecord } from '../telemetry/history.js';
import { EVENT_KINDS } from '../telemetry/telemetry-service.js';
import type { StepSummary } from '../telemetry/step-aggregator.js';
import { parseCheckpointFolderName } from '../../checkpoints/manifest.js';
import { checkpointBytes, listCheckpoints, readManifestQuietly } from '../../checkpoints/validate.js';

export interface ControlServiceOptions {
  queue: JobQueue;
  history: TelemetryHistory;
  plans: PlanStore;
  runsDir: string;
  /** Required as `authorization: Bearer <token>` on every call when set (listening beyond loopback). */
  adminToken?: string;
  /** A Redis connection for pub/sub (WatchJob); one per watcher is duplicated from it. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
}

/**
 * A CPU node that did not measure its sgemm rate (its agent ran with measuring off) is planned
 * at this rate: about a third of one modern core's single-thread sgemm, so step-time estimates
 * err long. Agents measure by default (`longctx server`, `agent-main --measure-sgemm`).
 */
export const UNMEASURED_CPU_GFLOPS = 50;

/** The device a job would be planned for: the most constrained one among nodes that can hold it. */
export function planningDevice(
  nodes: NodeStatus[],
  devices: number,
): { device: DeviceProfile; largest: number } | undefined {
  const alive = nodes.filter((n) => n.alive);
  const pool = alive.length > 0 ? alive : nodes;
  if (pool.length === 0) return undefined;
  const largest = Math.max(...pool.map((n) => n.devices));
  const eligible = pool.filter((n) => n.devices >= devices);
  const node = (eligible.length > 0 ? eligible : pool).reduce((a, b) =>
    Math.min(...b.deviceMemoryBytes) < Math.min(...a.deviceMemoryBytes) ? b : a,
  );
  const memory = Math.min(...node.deviceMemoryBytes);
  const device =
    node.kind === 'cuda'
      ? (gpuProfileFor(node.deviceNames[0] ?? '', memory) ??
        cpuProfile(memory, node.sgemmGflops ?? UNMEASURED_CPU_GFLOPS))
      : cpuProfile(memory, node.sgemmGflops ?? UNMEASURED_CPU_GFLOPS);
  return { device, largest };
}

export function toProtoPlan(plan: Omit<PlanResult, 'candidates'>): longctx.IPlan {
  const b = plan.memory.breakdown;
  return {
    activationCheckpointing: plan.activationCheckpointing,
    offload: plan.offload,
    perRank: {
      weights: b.weights,
      gradients: b.gradients,
      optimizer: b.optimizer,
      activations: b.activations,
      ringBuffers: b.ring_buffers,
      crossEntropy: b.cross_entropy,
      workspace: b.workspace,
      total: plan.memory.peak,
      host: plan.memory.host,
    },
    deviceBudgetBytes: plan.budgetBytes,
    stepSeconds: plan.stepSeconds,
    totalSeconds: plan.totalSeconds,
    modelFlopsPerStep: plan.flopsPerStep,
    shards: plan.shards.map((s) => ({
      rank: s.rank,
      chunks: s.chunks,
      tokenStart: s.starts,
      chunkTokens: s.chunkTokens,
    })),
    notes: plan.notes,
  };
}

export function toProtoStep(jobId: string, s: StepSummary): longctx.IStepReport {
  const sum = (f: (r: StepSummary['ranks'][number]) => number) =>
    s.ranks.reduce((a, r) => a + f(r), 0) / Math.max(1, s.ranks.length);
  return {
    jobId,
    step: s.step,
    loss: s.loss,
    tokens: s.tokens,
    lr: s.lr,
    gradNorm: s.gradNorm,
    stepSeconds: s.stepSeconds,
    phases: { compute: sum((r) => r.compute), commWait: sum((r) => r.commWait) },
    deviceBytesPeak: Math.max(0, ...s.ranks.map((r) => r.deviceBytesPeak)),
    timeMs: s.timeMs,
  };
}

const PROTO_EVENT_KINDS = new Map(Object.entries(EVENT_KINDS).map(([proto, name]) => [name, Number(proto)]));

/** A worker event from the history as GetJob and WatchJob send it. */
export function toProtoEvent(jobId: string, e: WorkerEventRecord): longctx.IWorkerEvent {
  return {
    kind: PROTO_EVENT_KINDS.get(e.kind) ?? longctx.WorkerEvent.Kind.KIND_UNSPECIFIED,
    jobId,
    rank: e.rank,
    step: e.step,
    message: e.message,
    timeMs: e.timeMs,
    ...(e.checkpoint
      ? {
          checkpoint: {
            step: e.checkpoint.step,
            path: e.checkpoint.path,
            bytes: e.checkpoint.bytes,
            saveSeconds: e.checkpoint.saveSeconds,
            valid: true,
          },
        }
      : {}),
  };
}

type Verdict =
  { ok: true; spec: JobSpec; plan: PlanResult } | { ok: false; errors: FieldError[]; plan?: PlanResult };

export class ControlService {
  constructor(private readonly o: ControlServiceOptions) {}

  /** Everything short of queueing: spec, data file, nodes, plan. */
  async check(specYaml: string, specPath: string): Promise<Verdict> {
    const parsed = parseSpec(specYaml, specPath || '<spec>');
    if (!parsed.ok) return parsed;
    const spec = parsed.spec;
    const errors: FieldError[] = [];
    const data = await checkDataFile(spec.data.path, {
      seqLen: spec.seq_len,
      sequencesNeeded: spec.steps * spec.grad_accumulation,
      modelVocabSize: spec.model.config.vocab_size,
    });
    if (!data.ok) errors.push({ path: 'data.path', reason: data.error });
    const target = planningDevice(await this.o.queue.nodes(), spec.devices);
    if (!target)
      return {
        ok: false,
        errors: [
          ...errors,
          { path: 'devices', reason: `${spec.devices} requested but no node agent has registered` },
        ],
      };
    if (spec.devices > target.largest) {
      errors.push({
        path: 'devices',
        reason: `${spec.devices} requested but the largest node has ${target.largest}`,
      });
      return { ok: false, errors };
    }
    const plan = planJob(spec, target.device, target.largest);
    if (!plan.feasible) {
      errors.push({ path: 'seq_len', reason: `does not fit in device memory: ${plan.suggestion ?? ''}` });
    }
    if (errors.length > 0) return { ok: false, errors, plan };
    return {
      ok: true,
      spec: { ...spec, activation_checkpointing: plan.activationCheckpointing, offload: plan.offload },
      plan,
    };
  }

  private authorized(metadata: Metadata): boolean {
    if (!this.o.adminToken) return true;
    const header = String(metadata.get('authorization')[0] ?? '');
    const given = Buffer.from(header.replace(/^Bearer\s+/i, ''));
    const expected = Buffer.from(this.o.adminToken);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private unary<Req, Res>(handler: (req: Req) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      if (!this.authorized(call.metadata))
        return callback({
          code: status.UNAUTHENTICATED,
          details: 'an admin token is required (authorization: Bearer <token>)',
        });
      handler(call.request).then(
        (res) => callback(null, res),
        (err: unknown) =>
          // Errors that carry a gRPC status (NOT_FOUND for an unknown job) keep it.
          callback({
            code: (err as { code?: status }).code ?? status.INTERNAL,
            details: err instanceof Error ? err.message : String(err),
          }),
      );
    };
  }

  private async summary(job: JobRecord): Promise<longctx.IJobSummary> {
    const progress = await this.o.history.progress(job.id);
    return {
      ...toJobSummary(job),
      step: progress?.step ?? 0,
      loss: progress?.loss ?? 0,
      tokensPerSecond: progress?.tokensPerSecond ?? 0,
      mfu: progress?.mfu ?? 0,
    };
  }

  private async checkpoints(jobId: string): Promise<longctx.ICheckpointInfo[]> {
    const dir = join(this.o.runsDir, jobId, 'checkpoints');
    const names = await readdir(dir).catch(() => [] as string[]);
    const out: longctx.ICheckpointInfo[] = [];
    for (const name of names.sort()) {
      const step = parseCheckpointFolderName(name);
      if (step === undefined) continue;
      // The manifest only (`longctx checkpoints` reads every byte): valid means published here.
      const folder = join(dir, name);
      const manifest = await readManifestQuietly(folder);
      const written = manifest ? await stat(join(folder, 'manifest.json')).catch(() => undefined) : undefined;
      out.push({
        step,
        path: folder,
        valid: manifest !== undefined,
        bytes: manifest ? checkpointBytes(manifest) : 0,
        writtenAtMs: written?.mtimeMs ?? 0,
      });
    }
    const saved = (await this.o.history.workerEvents(jobId)).filter(
      (e) => e.kind === 'checkpoint-saved' && e.checkpoint,
    );
    for (const c of out) {
      const event = saved.find((e) => e.checkpoint?.step === Number(c.step));
      if (event?.checkpoint) c.saveSeconds = event.checkpoint.saveSeconds;
    }
    return out;
  }

  implementation(): UntypedServiceImplementation {
    return {
      submitJob: this.unary<longctx.SubmitJobRequest, longctx.ISubmitJobResponse>(async (req) => {
        const verdict = await this.check(req.specYaml, req.specPath);
        if (!verdict.ok)
          return {
            accepted: false,
            errors: verdict.errors,
            ...(verdict.plan ? { plan: toProtoPlan(verdict.plan) } : {}),
          };
        const submitted = await this.o.queue.submit({
          spec: verdict.spec,
          specYaml: req.specYaml,
          ...(req.specPath ? { specPath: req.specPath } : {}),
        });
        if (!submitted.ok) return { accepted: false, errors: submitted.errors };
        await this.o.plans.save(submitted.job.id, verdict.plan);
        return { accepted: true, jobId: submitted.job.id, plan: toProtoPlan(verdict.plan) };
      }),
      planJob: this.unary<longctx.PlanJobRequest, longctx.IPlanJobResponse>(async (req) => {
        const verdict = await this.check(req.specYaml, req.specPath);
        const response: longctx.IPlanJobResponse = {
          feasible: verdict.ok,
          errors: verdict.ok ? [] : verdict.errors,
        };
        const plan = verdict.plan;
        if (plan) {
          response.plan = toProtoPlan(plan);
          if (plan.suggestion) response.suggestion = plan.suggestion;
        }
        if (req.maxContext && verdict.ok) {
          const target = planningDevice(await this.o.queue.nodes(), verdict.spec.devices);
          if (target)
            response.maxSeqLen = maxContext(
              { ...verdict.spec, activation_checkpointing: 'auto', offload: 'auto' },
              target.device,
            );
        }
        return response;
      }),
      listJobs: this.unary<longctx.ListJobsRequest, longctx.IListJobsResponse>(async (req) => {
        const states = req.states.map((s) => fromProtoJobState(s)).filter((s) => s !== undefined);
        const jobs = await this.o.queue.list(states.length > 0 ? { states } : {});
        return { jobs: await Promise.all(jobs.map((j) => this.summary(j))) };
      }),
      getJob: this.unary<longctx.GetJobRequest, longctx.IJobDetail>(async (req) => {
        const job = await this.o.queue.get(req.jobId);
        if (!job) throw Object.assign(new Error(`no job '${req.jobId}'`), { code: status.NOT_FOUND });
        const plan = await this.o.plans.get(job.id);
        const steps = await this.o.history.steps(job.id, 200);
        const events = await this.o.history.workerEvents(job.id);
        return {
          summary: await this.summary(job),
          specYaml: job.specYaml,
          ...(plan ? { plan: toProtoPlan(plan) } : {}),
          checkpoints: await this.checkpoints(job.id),
          recentSteps: steps.map((s) => toProtoStep(job.id, s)),
          events: events.map((e) => toProtoEvent(job.id, e)),
        };
      }),
      cancelJob: this.unary<longctx.CancelJobRequest, longctx.ICancelJobResponse>(async (req) => {
        const r = await this.o.queue.cancel(req.jobId);
        return {
          cancelled: r.cancelled,
          message: r.message,
          ...(r.previousState ? { previousState: longctx.JobState[`JOB_STATE_${r.previousState}`] } : {}),
        };
      }),
      resumeJob: this.unary<longctx.ResumeJobRequest, longctx.IResumeJobResponse>(async (req) => {
        const r = await this.o.queue.resume(req.jobId);
        const response: longctx.IResumeJobResponse = {
          resumed: r.resumed,
          message: r.message,
          ...(r.previousState ? { previousState: longctx.JobState[`JOB_STATE_${r.previousState}`] } : {}),
        };
        if (!r.resumed) return response;
        // What the agent will find: the newest published checkpoint. It verifies the checksums
        // when the attempt starts (reading every byte) and falls back to an older one if needed.
        const [newest] = await listCheckpoints(join(this.o.runsDir, req.jobId, 'checkpoints'));
        return {
          ...response,
          ...(newest ? { fromStep: newest.step, checkpoint: newest.dir } : {}),
          message: newest
            ? `queued again: continues from its newest checkpoint, step ${newest.step} (checked when it starts)`
            : 'queued again: it has no checkpoint, so it starts from step 0',
        };
      }),
      watchJob: (call: ServerWritableStream<longctx.WatchJobRequest, longctx.IJobUpdate>) =>
        void this.watch(call),
    };
  }

  /** Streams a job's summary, then every state change, step and worker event until it ends. */
  private async watch(
    call: ServerWritableStream<longctx.WatchJobRequest, longctx.IJobUpdate>,
  ): Promise<void> {
    if (!this.authorized(call.metadata)) {
      call.emit('error', { code: status.UNAUTHENTICATED, details: 'an admin token is required' });
      return;
    }
    const jobId = call.request.jobId;
    const job = await this.o.queue.get(jobId);
    if (!job) {
      call.emit('error', { code: status.NOT_FOUND, details: `no job '${jobId}'` });
      return;
    }
    const closers: (() => Promise<void>)[] = [];
    let ended = false;
    const end = async () => {
      if (ended) return;
      ended = true;
      await Promise.all(closers.map((c) => c().catch(() => undefined)));
      call.end();
    };
    call.on('cancelled', () => void end());
    const sendSummary = async () => {
      const current = await this.o.queue.get(jobId);
      if (!current || ended) return;
      call.write({ summary: await this.summary(current) });
      if (isTerminal(current.state)) await end();
    };
    const subscription = await this.o.queue.watch((event) => {
      if (event.jobId === jobId) void sendSummary();
    });
    closers.push(() => subscription.close());
    closers.push(
      await this.o.subscribe(this.o.history.channel(jobId), (message) => {
        if (ended) return;
        const update = JSON.parse(message) as TelemetryUpdate;
        if (update.type === 'step') call.write({ step: toProtoStep(jobId, update.step) });
        else call.write({ event: toProtoEvent(jobId, update.event) });
      }),
    );
    await sendSummary();
  }
}
