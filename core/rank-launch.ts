// The contract between the node agent and a worker process: everything one rank needs to know,
// passed as LONGCTX_* environment variables (and the same object as JSON in LONGCTX_LAUNCH_FILE,
// for tools and for reproducing a rank by hand). The worker host reads it with rankLaunchFromEnv().
//
// A worker must:
// - use device `deviceIndex` of kind `deviceKind` and allocate at most `deviceBudgetBytes` on it
//   (CUDA_VISIBLE_DEVICES is not narrowed; select the device by index);
// - rendezvous with the other ranks of the same attempt under `rendezvous.prefix` in the Redis at
//   `rendezvous.redisUrl` (a new attempt has a new prefix, so stale ranks never join it), listening
//   for its peers on `rendezvous.bindHost` (the node's address when the gang spans nodes);
// - register on the telemetry stream at `telemetry.address` with `telemetry.token` (a secret of
//   this attempt only);
// - resume from `resume` when given (the agent chose it once for the whole gang) and write
//   checkpoints under `checkpointsDir`;
// - exit 0 only when training finished; exit promptly on SIGTERM (the agent escalates to SIGKILL
//   after a grace period), and exit when its parent is no longer `agentPid` (the agent died).
// - exit with PERMANENT_EXIT_CODES for failures a restart cannot fix (bad data, a bad config, an
//   out-of-memory the plan did not predict), any other non-zero code for the rest.
import type { DeviceKind } from './devices.js';
import { checkJobId } from './run-folder.js';

export interface RankLaunch {
  jobId: string;
  jobName: string;
  /** 1 for the first placement, +1 for every restart. */
  attempt: number;
  rank: number;
  worldSize: number;
  node: string;
  deviceKind: DeviceKind;
  deviceIndex: number;
  deviceBudgetBytes: number;
  /** Host threads this rank may use (BLAS threads for an emulated device). */
  threads: number;
  rendezvous: {
    redisUrl: string;
    /** `longctx/<job>/<attempt>`: keys of this attempt's rendezvous. */
    prefix: string;
    /** The address this rank listens on for its peers: its node's, which the other nodes reach. */
    bindHost: string;
  };
  telemetry: {
    /** host:port of the orchestrator's Telemetry gRPC service; empty for none. */
    address: string;
    token: string;
  };
  /** runs/<job>: logs/, checkpoints/, spec.yaml, spec.json. */
  runDir: string;
  checkpointsDir: string;
  /** The validated JobSpec as JSON. */
  specFile: string;
  /** The checkpoint every rank resumes from; absent: start from the initial weights. */
  resume?: { step: number; dir: string };
  /** The agent that started this rank. */
  agentPid: number;
}

/** Environment variable names, one per field. */
export const RANK_ENV = {
  jobId: 'LONGCTX_JOB_ID',
  jobName: 'LONGCTX_JOB_NAME',
  attempt: 'LONGCTX_ATTEMPT',
  rank: 'LONGCTX_RANK',
  worldSize: 'LONGCTX_WORLD_SIZE',
  node: 'LONGCTX_NODE',
  deviceKind: 'LONGCTX_DEVICE_KIND',
  deviceIndex: 'LONGCTX_DEVICE_INDEX',
  deviceBudgetBytes: 'LONGCTX_DEVICE_BUDGET_BYTES',
  threads: 'LONGCTX_THREADS',
  redisUrl: 'LONGCTX_REDIS_URL',
  rendezvousPrefix: 'LONGCTX_RENDEZVOUS_PREFIX',
  bindHost: 'LONGCTX_BIND_HOST',
  telemetryAddress: 'LONGCTX_TELEMETRY_ADDRESS',
  telemetryToken: 'LONGCTX_TELEMETRY_TOKEN',
  runDir: 'LONGCTX_RUN_DIR',
  checkpointsDir: 'LONGCTX_CHECKPOINTS_DIR',
  specFile: 'LONGCTX_SPEC_FILE',
  resumeStep: 'LONGCTX_RESUME_STEP',
  resumeDir: 'LONGCTX_RESUME_DIR',
  agentPid: 'LONGCTX_AGENT_PID',
  launchFile: 'LONGCTX_LAUNCH_FILE',
} as const;

/** The rendezvous prefix of one attempt of one job: "longctx/<job>/<attempt>". */
export function rendezvousPrefix(job: string, attempt: number): string {
  checkJobId(job);
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`attempt must be an integer >= 1, got ${attempt}`);
  }
  return `longctx/${job}/${attempt}`;
}

/** The environment variables for one rank. */
export function rankLaunchEnv(launch: RankLaunch, launchFile?: string): Record<string, string> {
  const env: Record<string, string> = {
    [RANK_ENV.jobId]: launch.jobId,
    [RANK_ENV.jobName]: launch.jobName,
    [RANK_ENV.attempt]: String(launch.attempt),
    [RANK_ENV.rank]: String(launch.rank),
    [RANK_ENV.worldSize]: String(launch.worldSize),
    [RANK_ENV.node]: launch.node,
    [RANK_ENV.deviceKind]: launch.deviceKind,
    [RANK_ENV.deviceIndex]: String(launch.deviceIndex),
    [RANK_ENV.deviceBudgetBytes]: String(launch.deviceBudgetBytes),
    [RANK_ENV.threads]: String(launch.threads),
    [RANK_ENV.redisUrl]: launch.rendezvous.redisUrl,
    [RANK_ENV.rendezvousPrefix]: launch.rendezvous.prefix,
    [RANK_ENV.bindHost]: launch.rendezvous.bindHost,
    [RANK_ENV.telemetryAddress]: launch.telemetry.address,
    [RANK_ENV.telemetryToken]: launch.telemetry.token,
    [RANK_ENV.runDir]: launch.runDir,
    [RANK_ENV.checkpointsDir]: launch.checkpointsDir,
    [RANK_ENV.specFile]: launch.specFile,
    [RANK_ENV.agentPid]: String(launch.agentPid),
  };
  if (launch.resume) {
    env[RANK_ENV.resumeStep] = String(launch.resume.step);
    env[RANK_ENV.resumeDir] = launch.resume.dir;
  }
  if (launchFile) env[RANK_ENV.launchFile] = launchFile;
  return env;
}

/** Reads a rank's launch from its environment; a missing or malformed variable is an error naming it. */
export function rankLaunchFromEnv(env: NodeJS.ProcessEnv = process.env): RankLaunch {
  const text = (name: string): string => {
    const value = env[name];
    if (value === undefined || value === '') {
      throw new Error(`${name} is not set: this process must be started by the longctx node agent`);
    }
    return value;
  };
  const whole = (name: string, min: number): number => {
    const value = text(name);
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min)
      throw new Error(`${name}: must be a whole number ≥ ${min}, got '${value}'`);
    return n;
  };
  const deviceKind = text(RANK_ENV.deviceKind);
  if (deviceKind !== 'cpu' && deviceKind !== 'cuda') {
    throw new Error(`${RANK_ENV.deviceKind}: must be 'cpu' or 'cuda', got '${deviceKind}'`);
  }
  const launch: RankLaunch = {
    jobId: text(RANK_ENV.jobId),
    jobName: text(RANK_ENV.jobName),
    attempt: whole(RANK_ENV.attempt, 1),
    rank: whole(RANK_ENV.rank, 0),
    worldSize: whole(RANK_ENV.worldSize, 1),
    node: text(RANK_ENV.node),
    deviceKind,
    deviceIndex: whole(RANK_ENV.deviceIndex, 0),
    deviceBudgetBytes: whole(RANK_ENV.deviceBudgetBytes, 1),
    threads: whole(RANK_ENV.threads, 1),
    rendezvous: {
      redisUrl: text(RANK_ENV.redisUrl),
      prefix: text(RANK_ENV.rendezvousPrefix),
      // Unset: a rank started by hand or by an older agent, on one node.
      bindHost: env[RANK_ENV.bindHost] || '127.0.0.1',
    },
    // An empty address means no telemetry (a rank started by hand or by a test); a token is
    // required only with an address.
    telemetry: env[RANK_ENV.telemetryAddress]
      ? { address: text(RANK_ENV.telemetryAddress), token: text(RANK_ENV.telemetryToken) }
      : { address: '', token: '' },
    runDir: text(RANK_ENV.runDir),
    checkpointsDir: text(RANK_ENV.checkpointsDir),
    specFile: text(RANK_ENV.specFile),
    agentPid: whole(RANK_ENV.agentPid, 1),
  };
  if (launch.rank >= launch.worldSize) {
    throw new Error(
      `${RANK_ENV.rank}: ${launch.rank} is not below ${RANK_ENV.worldSize} ${launch.worldSize}`,
    );
  }
  if (env[RANK_ENV.resumeDir]) {
    launch.resume = { step: whole(RANK_ENV.resumeStep, 0), dir: text(RANK_ENV.resumeDir) };
  }
  return launch;
}

/**
 * Failures no restart can fix, and the exit code a rank reports each with (sysexits-style). The
 * agent ends the job FAILED at once on one of these instead of retrying: the same data, config
 * and plan would fail the same way. Any other non-zero exit (a crash, a kill, exit 1) is retried.
 */
export type PermanentFailure = 'bad-data' | 'bad-config' | 'out-of-memory';

export const PERMANENT_EXIT_CODES: Record<PermanentFailure, number> = {
  'bad-data': 65, // EX_DATAERR
  'bad-config': 78, // EX_CONFIG
  'out-of-memory': 79,
};

/** The permanent failure a rank's exit code stands for; undefined for a retryable one. */
export function permanentFailureOfExit(code: number | null | undefined): PermanentFailure | undefined {
  for (const [kind, value] of Object.entries(PERMANENT_EXIT_CODES))
    if (code === value) return kind as PermanentFailure;
  return undefined;
}
