// `make chaos`: real jobs (tiny preset, CPU ranks) driven through the faults an operator meets,
// each counted. For every fault kind one JSON line {fault, tried, recovered, lost}: a try is
// recovered when its job ended SUCCEEDED with final weights byte-identical to an uninterrupted run
// (computed once at the start), the fault visibly took effect (e.g. the job came back from a
// checkpoint), and no process of the try was left behind; anything else is lost, with the reason
// on stderr. Not part of `make test`: it runs for minutes.
//
//   node dist/test/chaos/run.js [--only FAULT,FAULT] [--rank-kills N] [--tries N] [--seed N]
//
// --rank-kills (default 20) rank SIGKILLs in all, up to 5 per job; --tries (default 3) tries of
// every other fault kind.
//
// Most tries run on a "stack" as a cluster is laid out: a Redis (durable, on a fixed port so it can
// be restarted where its clients expect it), the orchestrator in this process, and the node agent
// as its own process (`cluster/agent-main.js`), so each piece can be killed on its own. The
// server-kill try uses the real `longctx server` CLI with its embedded Redis instead.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { credentials, type Client } from '@grpc/grpc-js';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { freePort, startEmbeddedRedis, type EmbeddedRedis } from '../../cluster/embedded-redis.js';
import { processAlive } from '../../cluster/process-groups.js';
import { connectRedis, JobQueue } from '../../control/job-queue.js';
import type { JobRecord } from '../../control/job-record.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { startServer, type RunningServer } from '../../orchestrator/server.js';
import type { longctx } from '../../proto/services.js';
import { AGENT_MAIN } from '../helpers/control.js';
import { cliServerReady, ControlClient, spawnCliServer, unary, until } from '../helpers/cli-server.js';

// Long enough that a rank kill lands mid-training and a relaunch has steps left to redo.
const STEPS = 32;
const CHECKPOINT_EVERY = 4;
const DEVICES = 2;
const KILLS_PER_JOB = 5;
const END_STATES = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    'rank-kills': { type: 'string', default: '20' },
    tries: { type: 'string', default: '3' },
    seed: { type: 'string' },
  },
});
const rankKills = Number(args['rank-kills']);
if (!Number.isInteger(rankKills) || rankKills < 0)
  throw new Error(`--rank-kills: a whole number, got '${args['rank-kills']}'`);
const tries = Number(args.tries);
if (!Number.isInteger(tries) || tries < 1)
  throw new Error(`--tries: a whole number from 1, got '${args.tries}'`);

// A seeded generator, so a run that found something can be repeated (the seed is printed).
let seed = args.seed !== undefined ? Number(args.seed) : randomInt(2 ** 31);
const seedUsed = seed;
function random(): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
}
const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const note = (line: string) => process.stderr.write(`chaos: ${line}\n`);

let root = '';
let dataPath = '';
let reference: Buffer | undefined;

function specYaml(name: string): string {
  return `
name: ${name}
model: { preset: tiny }
data: { path: ${dataPath} }
seq_len: 256
devices: ${DEVICES}
steps: ${STEPS}
optimizer: { lr: 3.0e-3 }
checkpoint: { every: ${CHECKPOINT_EVERY}, keep: 2 }
max_restarts: ${KILLS_PER_JOB + 3}
`;
}

const checkpointsOf = (runsDir: string, id: string) => join(runsDir, id, 'checkpoints');
const finalWeights = (runsDir: string, id: string) =>
  readFile(join(checkpointsOf(runsDir, id), `step-${String(STEPS).padStart(8, '0')}`, 'model.safetensors'));

/** Pids of live processes whose environment or command line mentions `needle`. */
async function processesMentioning(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const [environ, cmdline] = await Promise.all([
        readFile(`/proc/${pid}/environ`, 'latin1'),
        readFile(`/proc/${pid}/cmdline`, 'latin1'),
      ]);
      if (environ.includes(needle) || cmdline.includes(needle)) found.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Waits for every process mentioning `needle` to exit; kills (and returns) those that do not. */
async function leftovers(needle: string, waitMs = 15_000): Promise<number[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const pids = await processesMentioning(needle);
    if (pids.length === 0) return [];
    if (Date.now() > deadline) {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      return pids;
    }
    await sleep(250);
  }
}

/** Talks to an orchestrator: submit, read the job, wait for its end. */
class Control {
  readonly client: Client;
  readonly queue: JobQueue;
  readonly history: TelemetryHistory;
  private readonly redis;

  constructor(grpcAddress: string, redisUrl: string) {
    this.client = new ControlClient(grpcAddress, credentials.createInsecure());
    this.redis = connectRedis(redisUrl);
    this.queue = new JobQueue(this.redis);
    this.history = new TelemetryHistory(this.redis, this.queue.store.keys);
  }

  async submit(name: string): Promise<string> {
    const r = await unary<object, longctx.ISubmitJobResponse>(this.client, 'submitJob', {
      specYaml: specYaml(name),
    });
    if (!r.accepted) throw new Error(`submit ${name}: ${JSON.stringify(r.errors)}`);
    return r.jobId!;
  }

  /** The job once it runs a full gang whose last complete step is at least `step`. */
  running(id: string, step = 0, timeoutMs = 240_000): Promise<JobRecord | 'ended'> {
    return until(
      async () => {
        const [job, progress] = await Promise.all([this.queue.get(id), this.history.progress(id)]);
        if (!job || END_STATES.includes(job.state)) return job ? 'ended' : undefined;
        const atStep = step === 0 || (progress !== undefined && progress.step >= step);
        return job.state === 'RUNNING' &&
          job.pids.length === DEVICES &&
          job.pids.every(processAlive) &&
          atStep
          ? job
          : undefined;
      },
      timeoutMs,
      `job ${id} to run${step ? ` past step ${step}` : ''}`,
    );
  }

  ended(id: string, timeoutMs = 300_000): Promise<JobRecord> {
    return until(
      async () => {
        const job = await this.queue.get(id);
        return job && END_STATES.includes(job.state) ? job : undefined;
      },
      timeoutMs,
      `job ${id} to end`,
    );
  }

  async close(): Promise<void> {
    this.client.close();
    await this.queue.close().catch(() => undefined);
    this.redis.disconnect();
  }
}

/** Redis + orchestrator (in this process) + node agent (its own process), on one folder. */
class Stack {
  redis!: EmbeddedRedis;
  server?: RunningServer;
  agent?: ChildProcess;
  control!: Control;
  private grpcPort = 0;
  readonly runsDir: string;
  private readonly nodeFile: string;
  private agentOutput = '';

  constructor(
    readonly dir: string,
    runsDir?: string,
  ) {
    this.runsDir = runsDir ?? join(dir, 'runs');
    this.nodeFile = join(dir, 'node.yaml');
  }

  static async start(dir: string, runsDir?: string): Promise<Stack> {
    const stack = new Stack(dir, runsDir);
    await writeFile(
      stack.nodeFile,
      `node: chaos\nkind: cpu\ndevices: ${DEVICES}\ndevice_memory: 256MiB\nsgemm_gflops: 20\n`,
    );
    stack.redis = await startEmbeddedRedis({ dataDir: join(dir, 'redis') });
    stack.grpcPort = await freePort();
    await stack.startServer();
    stack.startAgent();
    stack.control = new Control(stack.server!.grpcAddress, stack.redis.url);
    await until(
      async () =>
        (await stack.control.queue.nodes()).some((n) => n.name === 'chaos' && n.alive) ? true : undefined,
      30_000,
      `the node agent to register (${stack.tail()})`,
    );
    return stack;
  }

  async startServer(): Promise<void> {
    this.server = await startServer({
      redisUrl: this.redis.url,
      grpcPort: this.grpcPort,
      httpPort: null,
      runsDir: this.runsDir,
      localAgent: false,
      watchdog: { silenceMs: 4000, minStallMs: 20_000, startupMs: 40_000 },
      backoff: { baseMs: 200, maxMs: 1000 },
      log: () => {},
    });
  }

  async stopServer(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
  }

  startAgent(): void {
    this.agent = spawn(
      process.execPath,
      [
        AGENT_MAIN,
        '--redis',
        this.redis.url,
        '--telemetry',
        `127.0.0.1:${this.grpcPort}`,
        '--runs',
        this.runsDir,
        '--node-file',
        this.nodeFile,
        '--no-gpu',
        '--lease-ms',
        '3000',
        '--lock-ms',
        '4000',
        '--stalled-ms',
        '2000',
        '--grace-ms',
        '3000',
        '--backoff-ms',
        '200',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.agent.stdout!.on(
      'data',
      (c: Buffer) => (this.agentOutput = (this.agentOutput + c.toString()).slice(-4000)),
    );
    this.agent.stderr!.on(
      'data',
      (c: Buffer) => (this.agentOutput = (this.agentOutput + c.toString()).slice(-4000)),
    );
  }

  async killAgent(): Promise<void> {
    const agent = this.agent!;
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGKILL');
    await exited;
  }

  /** A clean Redis restart on the same port and data (clients reconnect by themselves). */
  async restartRedis(downMs: number): Promise<void> {
    const { port, dir } = this.redis;
    await this.redis.stop();
    await sleep(downMs);
    this.redis = await startEmbeddedRedis({ dataDir: dir, port });
  }

  async stop(): Promise<void> {
    await this.control.close();
    const agent = this.agent;
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
    await this.stopServer();
    await this.redis.stop();
  }

  tail(): string {
    return this.agentOutput.trim().split('\n').slice(-12).join(' | ');
  }
}

/** The outcome of one try: recovered, or why not. */
type Verdict = { ok: true } | { ok: false; reason: string };

/** The checks every try ends with: the job's end, its weights, and the processes it left. */
async function judge(control: Control, runsDir: string, id: string): Promise<Verdict> {
  const job = await control.ended(id);
  if (job.state !== 'SUCCEEDED') return { ok: false, reason: `${job.state}: ${job.message}` };
  const weights = await finalWeights(runsDir, id).catch(() => undefined);
  if (!weights) return { ok: false, reason: 'no final checkpoint' };
  if (!weights.equals(reference!))
    return { ok: false, reason: 'final weights differ from the uninterrupted run' };
  const orphans = await leftovers(`LONGCTX_JOB_ID=${id}\0`);
  if (orphans.length > 0)
    return { ok: false, reason: `ranks left running after the end: ${orphans.join(', ')}` };
  return { ok: true };
}

interface Count {
  fault: string;
  tried: number;
  recovered: number;
  lost: number;
}

/** Runs `body` in a fresh folder; a throw or processes left in the folder's name make it lost. */
async function attempt(
  label: string,
  body: (dir: string) => Promise<{ tried: number; verdict: Verdict }>,
): Promise<{ tried: number; verdict: Verdict }> {
  const dir = await mkdtemp(join(root, `${label}-`));
  let outcome: { tried: number; verdict: Verdict };
  try {
    outcome = await body(dir);
  } catch (err) {
    outcome = { tried: 1, verdict: { ok: false, reason: (err as Error).message } };
  }
  const stray = await leftovers(dir);
  if (stray.length > 0 && outcome.verdict.ok)
    outcome = {
      ...outcome,
      verdict: { ok: false, reason: `processes left after teardown: ${stray.join(', ')}` },
    };
  if (!outcome.verdict.ok) note(`${label}: LOST: ${outcome.verdict.reason}`);
  return outcome;
}

/** A try on a stack: `fault` acts on the running job and says whether it acted, `evidence` checks it took effect. */
async function stackTry(
  label: string,
  fault: (stack: Stack, id: string) => Promise<boolean>,
  evidence: (stack: Stack, job: JobRecord, id: string) => Promise<string | undefined> = restarted,
  runsDirOf?: (dir: string) => Promise<string>,
): Promise<{ tried: number; verdict: Verdict }> {
  return attempt(label, async (dir) => {
    const stack = await Stack.start(dir, runsDirOf ? await runsDirOf(dir) : undefined);
    try {
      const id = await stack.control.submit(label);
      const acted = await fault(stack, id);
      if (!acted) return { tried: 0, verdict: { ok: true } };
      const verdict = await judge(stack.control, stack.runsDir, id);
      if (!verdict.ok)
        return { tried: 1, verdict: { ok: false, reason: `${verdict.reason} (agent: ${stack.tail()})` } };
      const job = (await stack.control.queue.get(id))!;
      const missing = await evidence(stack, job, id);
      if (missing) return { tried: 1, verdict: { ok: false, reason: `${missing} (agent: ${stack.tail()})` } };
      return { tried: 1, verdict };
    } finally {
      await stack.stop();
    }
  });
}

const restarted = async (stack: Stack, job: JobRecord, id: string) =>
  job.attempt >= 2 ? undefined : `the job never restarted (${await eventTrail(stack, id)})`;

// ---------------------------------------------------------------------------------------------
// The faults.

/** SIGKILL of a random rank at a random moment, several per job, until `total` were tried. */
async function rankKillTries(total: number): Promise<Count> {
  const count: Count = { fault: 'rank-sigkill', tried: 0, recovered: 0, lost: 0 };
  for (let n = 1; count.tried < total && n <= 3 * Math.ceil(total / KILLS_PER_JOB); n++) {
    let kills = 0;
    const result = await attempt(`rank-kill-${n}`, async (dir) => {
      const stack = await Stack.start(dir);
      try {
        const id = await stack.control.submit(`rank-kill-${n}`);
        const wanted = Math.min(KILLS_PER_JOB, total - count.tried);
        while (kills < wanted) {
          const job = await stack.control.running(id);
          if (job === 'ended') break;
          // A random moment of this attempt: a third of the kills in its first half second
          // (rendezvous, resume), the rest at a random step still ahead (jobs take seconds here,
          // so a random delay alone mostly missed them).
          if (random() < 1 / 3) await sleep(Math.floor(random() * 500));
          else {
            const from = ((await stack.control.history.progress(id))?.step ?? 0) + 1;
            const target = from + Math.floor(random() * Math.max(1, STEPS - 4 - from));
            await until(
              async () => {
                const [j, p] = await Promise.all([
                  stack.control.queue.get(id),
                  stack.control.history.progress(id),
                ]);
                return !j ||
                  j.attempt !== job.attempt ||
                  END_STATES.includes(j.state) ||
                  (p?.step ?? 0) >= target
                  ? true
                  : undefined;
              },
              120_000,
              `job ${id} to reach step ${target}`,
            );
          }
          const now = await stack.control.queue.get(id);
          if (!now || now.state !== 'RUNNING' || now.attempt !== job.attempt) continue;
          const pid = pick(now.pids);
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            continue; // that rank was already gone
          }
          kills++;
          note(`rank-kill-${n}: killed rank pid ${pid} of attempt ${now.attempt} (kill ${kills})`);
          // The next kill waits for the next attempt.
          await until(
            async () => {
              const j = await stack.control.queue.get(id);
              return j && (j.attempt > now.attempt || END_STATES.includes(j.state)) ? true : undefined;
            },
            120_000,
            `job ${id} to leave attempt ${now.attempt}`,
          );
        }
        if (kills === 0) return { tried: 0, verdict: { ok: true } };
        return { tried: kills, verdict: await judge(stack.control, stack.runsDir, id) };
      } finally {
        await stack.stop();
      }
    });
    // A try that failed before its first kill (e.g. at start) counts as one lost.
    const tried = kills > 0 ? kills : result.verdict.ok ? 0 : 1;
    count.tried += tried;
    if (result.verdict.ok) count.recovered += tried;
    else count.lost += tried;
  }
  return count;
}

/** SIGSTOP of a random rank mid-training: the watchdog must find the silent gang and restart it. */
function rankStop(stack: Stack, id: string): Promise<boolean> {
  return (async () => {
    const job = await stack.control.running(id, 2);
    if (job === 'ended') return false;
    process.kill(pick(job.pids), 'SIGSTOP');
    return true;
  })();
}

/** SIGKILL of the node agent mid-training; a new agent for the node is started, as systemd would. */
async function agentKill(stack: Stack, id: string): Promise<boolean> {
  const job = await stack.control.running(id, 2);
  if (job === 'ended') return false;
  await stack.killAgent();
  await sleep(1000);
  stack.startAgent();
  return true;
}

/** A Redis restart (clean shutdown, 2 s down, same port and data) while the job trains. */
async function redisRestart(stack: Stack, id: string): Promise<boolean> {
  const job = await stack.control.running(id, 2);
  if (job === 'ended') return false;
  await stack.restartRedis(2000);
  return true;
}

/** The orchestrator stops and comes back 3 s later while the gang trains on its own agent. */
async function serverGone(stack: Stack, id: string): Promise<boolean> {
  const job = await stack.control.running(id, 2);
  if (job === 'ended') return false;
  await stack.stopServer();
  await sleep(3000);
  await stack.startServer();
  return true;
}

/** The telemetry clients reconnected: the same attempt ran to the end and every step arrived. */
async function reconnected(stack: Stack, job: JobRecord, id: string): Promise<string | undefined> {
  if (job.attempt !== 1)
    return `the gang was restarted (attempt ${job.attempt}), so nothing had to reconnect`;
  const progress = await stack.control.history.progress(id);
  return progress?.step === STEPS ? undefined : `the server heard up to step ${progress?.step ?? 'none'}`;
}

/** A job's published checkpoint folders, oldest first. */
async function checkpointFolders(runsDir: string, id: string): Promise<string[]> {
  return (await readdir(checkpointsOf(runsDir, id)).catch(() => [] as string[]))
    .filter((n) => /^step-\d+$/.test(n))
    .sort()
    .map((n) => join(checkpointsOf(runsDir, id), n));
}

async function newestCheckpoint(runsDir: string, id: string): Promise<string | undefined> {
  return (await checkpointFolders(runsDir, id)).at(-1);
}

/**
 * Damages the newest checkpoint while the gang is frozen (SIGSTOP: no newer one can appear),
 * then kills a rank: the relaunch must pass over the damaged checkpoint and resume from an older
 * one. Saves run beside training, so a step count says nothing about what is published: the
 * gang is frozen only once two checkpoints are (tried again if a save landed meanwhile).
 */
function damageNewest(damage: (dir: string) => Promise<void>, damaged: { step: number }) {
  return async (stack: Stack, id: string): Promise<boolean> => {
    for (;;) {
      const job = await stack.control.running(id, 1);
      if (job === 'ended') return false;
      const published = await checkpointFolders(stack.runsDir, id);
      if (published.length < 2) {
        await sleep(100);
        continue;
      }
      for (const pid of job.pids) process.kill(pid, 'SIGSTOP');
      const frozen = await checkpointFolders(stack.runsDir, id);
      if (frozen.length < 2) {
        for (const pid of job.pids) process.kill(pid, 'SIGCONT'); // retention was mid-way: look again
        continue;
      }
      const newest = frozen.at(-1)!;
      damaged.step = Number(/step-(\d+)$/.exec(newest)![1]);
      await damage(newest);
      process.kill(pick(job.pids), 'SIGKILL');
      return true;
    }
  };
}

async function flipByte(dir: string): Promise<void> {
  const file = join(dir, 'model.safetensors');
  const handle = await open(file, 'r+');
  try {
    const { size } = await handle.stat();
    const at = Math.floor(size / 2 + random() * (size / 4));
    const one = Buffer.alloc(1);
    await handle.read(one, 0, 1, at);
    one[0] = one[0]! ^ 0x10;
    await handle.write(one, 0, 1, at);
  } finally {
    await handle.close();
  }
}

async function truncateFile(dir: string): Promise<void> {
  // One of the files the checkpoint is made of (the commit's part-rank-N.json notes are not).
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { files: object };
  const file = join(dir, pick(Object.keys(manifest.files).sort()));
  await truncate(file, Math.floor((await stat(file)).size / 2));
}

/** The events of a job in short, for a lost try's reason. */
async function eventTrail(stack: Stack, id: string): Promise<string> {
  const events = await stack.control.history.workerEvents(id);
  return events
    .filter((e) => e.rank === 0)
    .map((e) => `${e.attempt}:${e.kind}@${e.step}`)
    .join(' ');
}

/** The first relaunch resumed from a checkpoint older than the damaged one. */
function resumedBefore(damaged: { step: number }) {
  return async (stack: Stack, job: JobRecord, id: string): Promise<string | undefined> => {
    if (job.attempt < 2) return 'the job never restarted';
    const events = await stack.control.history.workerEvents(id);
    const resumed = events.find((e) => e.kind === 'resumed' && e.attempt >= 2);
    if (!resumed) return `no relaunch resumed from a checkpoint (${await eventTrail(stack, id)})`;
    if (resumed.step < damaged.step) return undefined;
    return `attempt ${resumed.attempt} resumed from step ${resumed.step}, the damaged one was ${damaged.step}`;
  };
}

/**
 * The disk fills during a save: the runs folder is a small tmpfs; once the job trains, a filler
 * leaves less room than one checkpoint needs; after the save failed (the job restarts), the
 * operator frees the space and the job must finish from its last good checkpoint.
 */
async function diskFull(): Promise<{ tried: number; verdict: Verdict }> {
  let mount = '';
  try {
    return await stackTry(
      'disk-full',
      async (stack, id) => {
        // Once a checkpoint is published, the disk fills up and stays full (something else keeps
        // writing, as a runaway log would: space that retention frees is taken again) until a save
        // has failed and the job left that attempt; then the space is freed.
        await until(() => newestCheckpoint(stack.runsDir, id), 120_000, 'a first checkpoint');
        const job = await stack.control.running(id, 1);
        if (job === 'ended') return false;
        const filler = join(stack.runsDir, 'filler');
        const handle = await open(filler, 'a');
        let filled = 0;
        /** Writes until no 4 KiB block is left (smaller and smaller pieces as space runs out). */
        const fillUp = async () => {
          for (let chunk = 1 << 20; chunk >= 4096;) {
            const { bytesWritten } = await handle
              .write(Buffer.alloc(chunk))
              .catch(() => ({ bytesWritten: 0 }));
            filled += bytesWritten;
            if (bytesWritten < chunk) chunk = Math.floor(chunk / 4);
          }
        };
        try {
          // Frozen while it fills, so the gang's next write meets a full disk.
          for (const pid of job.pids) process.kill(pid, 'SIGSTOP');
          await fillUp();
          for (const pid of job.pids) process.kill(pid, 'SIGCONT');
          await until(
            async () => {
              await fillUp();
              const j = await stack.control.queue.get(id);
              return j && (j.attempt > job.attempt || END_STATES.includes(j.state)) ? true : undefined;
            },
            120_000,
            'a save to fail on the full disk',
          );
        } finally {
          await handle.close();
        }
        note(`disk-full: ${filled} bytes of filler until attempt ${job.attempt} ended`);
        await rm(filler);
        return true;
      },
      restarted,
      async (dir) => {
        mount = join(dir, 'runs');
        await mkdir(mount);
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mount]);
        return mount;
      },
    );
  } finally {
    if (mount) {
      try {
        execFileSync('umount', [mount]);
      } catch (err) {
        note(`disk-full: could not unmount ${mount}: ${(err as Error).message}`);
      }
    }
  }
}

/** SIGKILL of the whole `longctx server` (node process and its redis-server), then started again. */
function serverKill(): Promise<{ tried: number; verdict: Verdict }> {
  return attempt('server-kill', async (dir) => {
    const runsDir = join(dir, 'runs');
    const serverArgs = ['--devices', String(DEVICES), '--device-memory', '256MiB'];
    const first = spawnCliServer(runsDir, serverArgs);
    let second: ReturnType<typeof spawnCliServer> | undefined;
    let control: Control | undefined;
    try {
      const record = await cliServerReady(first, runsDir);
      control = new Control(record.grpcAddress!, record.redis!.url);
      const id = await control.submit('server-kill');
      const job = await control.running(id, 3);
      if (job === 'ended') return { tried: 0, verdict: { ok: true } };
      process.kill(record.redis!.pid, 'SIGKILL');
      process.kill(first.child.pid!, 'SIGKILL');
      await first.exited;
      await control.close();
      second = spawnCliServer(runsDir, serverArgs);
      const again = await cliServerReady(second, runsDir);
      control = new Control(again.grpcAddress!, again.redis!.url);
      const verdict = await judge(control, runsDir, id);
      const ended = (await control.queue.get(id))!;
      if (verdict.ok && ended.attempt < 2)
        return { tried: 1, verdict: { ok: false, reason: 'never restarted' } };
      return { tried: 1, verdict };
    } finally {
      await control?.close();
      for (const s of [first, second]) {
        if (s && s.child.exitCode === null && s.child.signalCode === null) {
          s.child.kill('SIGTERM');
          await s.exited;
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const only = args.only?.split(',');
  const wanted = (fault: string) => !only || only.includes(fault);
  const started = Date.now();
  root = await mkdtemp(join(tmpdir(), 'longctx-chaos-'));
  note(`seed ${seedUsed}, folder ${root}`);
  try {
    await synth(join(root, 'corpus.jsonl'), { docs: 150, seed: 9 });
    dataPath = (await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 9 }))
      .indexPath;

    // The uninterrupted run every try is compared with.
    await attempt('reference', async (dir) => {
      const stack = await Stack.start(dir);
      try {
        const id = await stack.control.submit('reference');
        const job = await stack.control.ended(id);
        if (job.state !== 'SUCCEEDED')
          throw new Error(`the reference run ended ${job.state}: ${job.message}`);
        reference = await finalWeights(stack.runsDir, id);
        return { tried: 1, verdict: { ok: true } };
      } finally {
        await stack.stop();
      }
    });
    if (!reference) throw new Error('no reference run: nothing to compare with');
    note(`reference run done after ${((Date.now() - started) / 1000).toFixed(0)} s`);

    const counts: Count[] = [];
    const repeated = async (fault: string, run: () => Promise<{ tried: number; verdict: Verdict }>) => {
      if (!wanted(fault)) return;
      const at = Date.now();
      const count: Count = { fault, tried: 0, recovered: 0, lost: 0 };
      for (let n = 0; n < tries; n++) {
        const { tried, verdict } = await run();
        count.tried += tried;
        if (verdict.ok) count.recovered += tried;
        else count.lost += tried;
      }
      counts.push(count);
      console.log(JSON.stringify(count));
      note(`${fault}: ${((Date.now() - at) / 1000).toFixed(0)} s`);
    };
    if (wanted('rank-sigkill')) {
      const count = await rankKillTries(rankKills);
      counts.push(count);
      console.log(JSON.stringify(count));
    }
    await repeated('rank-sigstop', () => stackTry('rank-sigstop', rankStop));
    await repeated('server-sigkill', serverKill);
    await repeated('agent-sigkill', () => stackTry('agent-sigkill', agentKill));
    await repeated('redis-restart', () =>
      stackTry('redis-restart', redisRestart, () => Promise.resolve(undefined)),
    );
    for (const [fault, damage] of [
      ['checkpoint-flipped-byte', flipByte],
      ['checkpoint-truncated', truncateFile],
    ] as const) {
      await repeated(fault, () => {
        const damaged = { step: 0 };
        return stackTry(fault, damageNewest(damage, damaged), resumedBefore(damaged));
      });
    }
    await repeated('disk-full-during-save', diskFull);
    await repeated('telemetry-reconnect', () => stackTry('telemetry-reconnect', serverGone, reconnected));
    const lost = counts.reduce((n, c) => n + c.lost, 0);
    note(`done in ${((Date.now() - started) / 1000).toFixed(0)} s: ${lost} lost`);
    process.exitCode = lost > 0 ? 1 : 0;
  } finally {
    if (existsSync(root)) await rm(root, { recursive: true, force: true, maxRetries: 5 });
  }
}

main().catch((err: unknown) => {
  console.error(`chaos: ${(err as Error).stack ?? String(err)}`);
  process.exit(2);
});
