// The Control gRPC service: what the CLI and the dashboard ask of the orchestrator. Submitting or
// planning a job goes through admission (orchestrator/plan/admission.ts) for the registered nodes;
// nothing is queued unless it passes, and the queued spec has its `auto` policies resolved.
import {
  Metadata,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

import { MANIFEST_FILE } from '../../checkpoints/commit.js';
import { checkpointBytes, listCheckpoints, readManifestQuietly } from '../../checkpoints/validate.js';
import { runFolder } from '../../core/run-folder.js';
import { planToProto, stepSummaryToProto, workerEventToProto } from '../../proto/convert.js';
import { longctx } from '../../proto/services.js';
import { admit, type Admission } from '../plan/admission.js';
import type { PlanStore } from '../plan/plan-store.js';
import { planSummary } from '../plan/planner.js';
import type { JobQueue } from '../../control/job-queue.js';
import { fromProtoJobState, isTerminal, toJobSummary, type JobRecord } from '../../control/job-record.js';
import type { TelemetryHistory, TelemetryUpdate } from '../../control/telemetry-history.js';

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

export class ControlService {
  constructor(private readonly o: ControlServiceOptions) {}

  /** Everything short of queueing (orchestrator/plan/admission.ts), for the registered nodes. */
  async check(specYaml: string, specPath: string, maxContext = false): Promise<Admission> {
    return admit(specYaml, specPath, await this.o.queue.nodes(), { checkData: true, maxContext });
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

  /** The job's published checkpoints, oldest first; valid = its manifest is there (not re-hashed). */
  private async checkpoints(jobId: string): Promise<longctx.ICheckpointInfo[]> {
    const out: longctx.ICheckpointInfo[] = [];
    for (const { step, dir } of (await listCheckpoints(this.checkpointsDir(jobId))).reverse()) {
      // The manifest only (`longctx checkpoints` reads every byte): valid means published here.
      const manifest = await readManifestQuietly(dir);
      const written = manifest ? await stat(join(dir, MANIFEST_FILE)).catch(() => undefined) : undefined;
      out.push({
        step,
        path: dir,
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

  private checkpointsDir(jobId: string): string {
    return runFolder(this.o.runsDir, jobId).checkpointsDir;
  }

  implementation(): UntypedServiceImplementation {
    return {
      submitJob: this.unary<longctx.SubmitJobRequest, longctx.ISubmitJobResponse>(async (req) => {
        const verdict = await this.check(req.specYaml, req.specPath);
        if (!verdict.ok || !verdict.spec || !verdict.plan)
          return {
            accepted: false,
            errors: verdict.errors,
            ...(verdict.plan ? { plan: planToProto(planSummary(verdict.plan)) } : {}),
          };
        const job = await this.o.queue.submit({
          spec: verdict.spec,
          specYaml: req.specYaml,
          ...(req.specPath ? { specPath: req.specPath } : {}),
        });
        await this.o.plans.save(job.id, verdict.plan);
        return { accepted: true, jobId: job.id, plan: planToProto(planSummary(verdict.plan)) };
      }),
      planJob: this.unary<longctx.PlanJobRequest, longctx.IPlanJobResponse>(async (req) => {
        const verdict = await this.check(req.specYaml, req.specPath, req.maxContext);
        const plan = verdict.plan;
        return {
          feasible: verdict.ok,
          errors: verdict.errors,
          ...(plan ? { plan: planToProto(planSummary(plan)) } : {}),
          ...(plan?.suggestion ? { suggestion: plan.suggestion } : {}),
          ...(verdict.maxSeqLen !== undefined ? { maxSeqLen: verdict.maxSeqLen } : {}),
        };
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
          ...(plan ? { plan: planToProto(planSummary(plan)) } : {}),
          checkpoints: await this.checkpoints(job.id),
          recentSteps: steps.map((s) => stepSummaryToProto(job.id, s)),
          events: events.map((e) => workerEventToProto(job.id, e)),
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
        const [newest] = await listCheckpoints(this.checkpointsDir(req.jobId));
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
        if (update.type === 'step') call.write({ step: stepSummaryToProto(jobId, update.step) });
        else call.write({ event: workerEventToProto(jobId, update.event) });
      }),
    );
    await sendSummary();
  }
}
