// A cluster of machines on one host, for the several-node tests: network namespaces on one
// link-local segment (netns.ts), one Redis and one orchestrator listening on this host's address
// there, a small corpus, a runs folder every node shares (as a network file system would be), and
// node agents started inside the namespaces — as an operator would (`longctx agent`) or through the
// agent entry point with short leases, so that a killed agent's node is taken over quickly.
import { spawn, type ChildProcess } from 'node:child_process';
import { credentials, Metadata } from '@grpc/grpc-js';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startEmbeddedRedis, type EmbeddedRedis } from '../../cluster/embedded-redis.js';
import { processAlive } from '../../cluster/process-groups.js';
import { connectRedis, JobQueue } from '../../control/job-queue.js';
import type { JobRecord } from '../../control/job-record.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import { repoRoot } from '../../core/repo-root.js';
import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { startServer, type RunningServer } from '../../orchestrator/server.js';
import type { longctx } from '../../proto/services.js';
import { ControlClient, unary, until } from './cli-server.js';
import { AGENT_MAIN } from './control.js';
import { createLinkLocalNodes, type LinkLocalNodes } from './netns.js';

const CLI_MAIN = join(repoRoot, 'dist/orchestrator/cli/main.js');
const ADMIN_TOKEN = 'link-local-cluster-token';

export interface AgentOptions {
  /** The node's name (its node file's `node`). */
  name: string;
  /** Which namespace of the cluster it runs in. */
  slot: number;
  devices: number;
  /** Run `longctx agent` (as an operator would) instead of the agent entry point with short leases. */
  cli?: boolean;
}

export interface LinkLocalCluster {
  net: LinkLocalNodes;
  runsDir: string;
  /** The packed corpus's index, for specs' `data.path`. */
  dataPath: string;
  grpcAddress: string;
  queue: JobQueue;
  history: TelemetryHistory;
  /** Starts a node agent in its namespace, with a node file naming the namespace's address. */
  startAgent(options: AgentOptions): Promise<ChildProcess>;
  /** SIGTERM, then waits for it to exit (nothing when it already has). */
  stopAgent(agent: ChildProcess): Promise<void>;
  /** Stops every agent started so far. */
  stopAgents(): Promise<void>;
  /** Submits a spec through the Control service as the admin; its job id. */
  submit(specYaml: string): Promise<string>;
  /** The job once it is RUNNING with `ranks` live ranks past `step` of its current attempt. */
  running(id: string, step: number, ranks: number, timeoutMs: number): Promise<JobRecord>;
  /** The job once it has ended (SUCCEEDED, FAILED or CANCELLED). */
  ended(id: string, timeoutMs: number): Promise<JobRecord>;
  /** The final checkpoint's model.safetensors of a job. */
  weights(id: string, step: number): Promise<Buffer>;
  /** Stops every agent, the server and Redis, and removes the namespaces: safe to call twice. */
  close(): Promise<void>;
}

/** `nodes` namespaces on the segment 169.254.`subnet`.0/24; the corpus is made from `seed`. */
export async function startLinkLocalCluster(o: {
  nodes: number;
  subnet: number;
  seed: number;
}): Promise<LinkLocalCluster> {
  const root = await mkdtemp(join(tmpdir(), 'longctx-cluster-'));
  const agents: ChildProcess[] = [];
  let net: LinkLocalNodes | undefined;
  let redis: EmbeddedRedis | undefined;
  let server: RunningServer | undefined;
  let queue: JobQueue | undefined;
  let connection: ReturnType<typeof connectRedis> | undefined;
  let client: InstanceType<typeof ControlClient> | undefined;
  // ava ends a timed-out file without its after-hooks: the namespaces and agents go regardless.
  const onExit = () => {
    for (const agent of agents) agent.kill('SIGKILL');
    net?.remove();
  };
  process.once('exit', onExit);

  const stopAgent = async (agent: ChildProcess) => {
    if (agent.exitCode !== null || agent.signalCode !== null) return;
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
  };
  const stopAgents = async () => {
    for (const agent of agents) await stopAgent(agent);
  };
  const close = async () => {
    await stopAgents();
    client?.close();
    await queue?.close();
    connection?.disconnect();
    await server?.stop();
    await redis?.stop();
    net?.remove();
    [client, queue, connection, server, redis] = [undefined, undefined, undefined, undefined, undefined];
    process.removeListener('exit', onExit);
    await rm(root, { recursive: true, force: true });
  };

  try {
    await synth(join(root, 'corpus.jsonl'), { docs: 150, seed: o.seed });
    const dataPath = (
      await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: o.seed })
    ).indexPath;
    const runsDir = join(root, 'runs');
    net = createLinkLocalNodes(o.nodes, o.subnet);
    redis = await startEmbeddedRedis({ host: net.serverAddress });
    server = await startServer({
      redisUrl: redis.url,
      host: net.serverAddress,
      adminToken: ADMIN_TOKEN,
      grpcPort: 0,
      httpPort: null,
      runsDir,
      localAgent: false,
      watchdog: { silenceMs: 4000, minStallMs: 20_000, startupMs: 40_000 },
      backoff: { baseMs: 200, maxMs: 1000 },
      log: () => {},
    });
    const grpcAddress = server.grpcAddress;
    connection = connectRedis(redis.url);
    queue = new JobQueue(connection);
    const history = new TelemetryHistory(connection, queue.store.keys);
    client = new ControlClient(grpcAddress, credentials.createInsecure());
    const admin = new Metadata();
    admin.set('authorization', `Bearer ${ADMIN_TOKEN}`);
    const jobs = queue;
    const redisUrl = redis.url;
    const nodes = net;

    return {
      net,
      runsDir,
      dataPath,
      grpcAddress,
      queue,
      history,
      stopAgent,
      stopAgents,
      close,
      startAgent: async ({ name, slot, devices, cli = false }) => {
        const node = nodes.nodes[slot]!;
        const nodeFile = join(root, `${name}.yaml`);
        await writeFile(
          nodeFile,
          `node: ${name}\nkind: cpu\ndevices: ${devices}\ndevice_memory: 256MiB\nsgemm_gflops: 20\naddress: ${node.address}\n`,
        );
        const common = ['--redis', redisUrl, '--runs', runsDir, '--node-file', nodeFile];
        const command = cli
          ? [CLI_MAIN, 'agent', '--server', grpcAddress, ...common]
          : [
              AGENT_MAIN,
              '--telemetry',
              grpcAddress,
              ...common,
              ...['--lease-ms', '3000', '--lock-ms', '4000', '--stalled-ms', '2000'],
              ...['--grace-ms', '3000', '--backoff-ms', '200'],
            ];
        const agent = spawn('ip', ['netns', 'exec', node.namespace, process.execPath, ...command], {
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        agents.push(agent);
        return agent;
      },
      submit: async (specYaml) => {
        const r = await unary<object, longctx.ISubmitJobResponse>(client!, 'submitJob', { specYaml }, admin);
        if (!r.accepted) throw new Error(JSON.stringify(r.errors));
        return r.jobId!;
      },
      running: (id, step, ranks, timeoutMs) =>
        until(
          async () => {
            const [job, progress] = await Promise.all([jobs.get(id), history.progress(id)]);
            return job?.state === 'RUNNING' &&
              job.pids.length === ranks &&
              job.pids.every(processAlive) &&
              progress?.attempt === job.attempt &&
              progress.step >= step
              ? job
              : undefined;
          },
          timeoutMs,
          `job ${id} to pass step ${step}`,
        ),
      ended: (id, timeoutMs) =>
        until(
          async () => {
            const job = await jobs.get(id);
            return job && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.state) ? job : undefined;
          },
          timeoutMs,
          `job ${id} to end`,
        ),
      weights: (id, step) =>
        readFile(
          join(runsDir, id, 'checkpoints', `step-${String(step).padStart(8, '0')}`, 'model.safetensors'),
        ),
    };
  } catch (err) {
    await close();
    throw err;
  }
}
