// Several nodes on one Redis, as separate machines: two network namespaces joined to this host by
// veth pairs in 169.254.0.0/16, a node agent in each (`longctx agent`, as on a real machine, and
// `cluster/agent-main.js`), one orchestrator and one Redis listening on a link-local address of this host. Each
// node trains a job whole (a gang is never split across nodes), its ranks running inside the
// node's namespace and reaching Redis and the Telemetry service over the veth; the runs folder is
// shared. The agent of one node is killed with SIGKILL mid-job: its gang is torn down, a new agent
// of that node relaunches it from its checkpoint, and it ends byte-identical to the job the other
// node ran without a fault. Skipped with the reason where `ip netns` is not permitted.
import { spawn, type ChildProcess } from 'node:child_process';
import { credentials, Metadata } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startEmbeddedRedis, type EmbeddedRedis } from '../../cluster/embedded-redis.js';
import { processAlive } from '../../cluster/process-groups.js';
import { connectRedis, JobQueue } from '../../control/job-queue.js';
import type { JobRecord } from '../../control/job-record.js';
import { TelemetryHistory } from '../../control/telemetry-history.js';
import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { startServer, type RunningServer } from '../../orchestrator/server.js';
import type { longctx } from '../../proto/services.js';
import { ControlClient, unary, until } from '../helpers/cli-server.js';
import { repoRoot } from '../../core/repo-root.js';
import { AGENT_MAIN } from '../helpers/control.js';
import {
  createLinkLocalNodes,
  inNamespace,
  linkExists,
  netnsSkipReason,
  type LinkLocalNodes,
} from '../helpers/netns.js';

const skipReason = netnsSkipReason();
const STEPS = 24;
const ADMIN_TOKEN = 'nodes-test-token';
const CLI_MAIN = join(repoRoot, 'dist/orchestrator/cli/main.js');

let root = '';
let net: LinkLocalNodes | undefined;
let redis: EmbeddedRedis | undefined;
let server: RunningServer | undefined;
const agents: ChildProcess[] = [];

// ava ends a timed-out file without its after-hooks: the namespaces and agents go regardless.
process.once('exit', () => {
  for (const agent of agents) agent.kill('SIGKILL');
  net?.remove();
});

test.after.always(async () => {
  for (const agent of agents) {
    if (agent.exitCode !== null || agent.signalCode !== null) continue;
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
  }
  await server?.stop();
  await redis?.stop();
  net?.remove();
  if (root) await rm(root, { recursive: true, force: true });
});

function specYaml(name: string, dataPath: string): string {
  return `
name: ${name}
model: { preset: tiny }
data: { path: ${dataPath} }
seq_len: 256
devices: 2
steps: ${STEPS}
optimizer: { lr: 3.0e-3 }
checkpoint: { every: 4, keep: 2 }
max_restarts: 3
`;
}

const body = async (t: ExecutionContext) => {
  root = await mkdtemp(join(tmpdir(), 'longctx-nodes-'));
  await synth(join(root, 'corpus.jsonl'), { docs: 150, seed: 9 });
  const dataPath = (
    await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 9 })
  ).indexPath;
  const runsDir = join(root, 'runs'); // shared by both nodes, as a network file system would be

  net = createLinkLocalNodes(2, 100 + (process.pid % 150));
  const host = net.serverAddress;
  redis = await startEmbeddedRedis({ host });
  server = await startServer({
    redisUrl: redis.url,
    host,
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
  t.true(grpcAddress.startsWith('169.254.'), grpcAddress);

  const names = ['node-a', 'node-b'];
  const startAgent = async (i: number): Promise<ChildProcess> => {
    const nodeFile = join(root, `${names[i]}.yaml`);
    await writeFile(
      nodeFile,
      `node: ${names[i]}\nkind: cpu\ndevices: 2\ndevice_memory: 256MiB\nsgemm_gflops: 20\n`,
    );
    // node-a runs `longctx agent` as an operator would; node-b the agent entry point with short
    // leases and timeouts, so its relaunch after the kill below is quick.
    const command =
      i === 0
        ? [
            CLI_MAIN,
            'agent',
            '--redis',
            redis!.url,
            '--server',
            grpcAddress,
            '--runs',
            runsDir,
            '--node-file',
            nodeFile,
          ]
        : [
            AGENT_MAIN,
            '--redis',
            redis!.url,
            '--telemetry',
            grpcAddress,
            '--runs',
            runsDir,
            '--node-file',
            nodeFile,
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
          ];
    const agent = spawn('ip', ['netns', 'exec', net!.nodes[i]!.namespace, process.execPath, ...command], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    agents.push(agent);
    return agent;
  };
  const agentA = await startAgent(0);
  const agentB = await startAgent(1);

  const redisConnection = connectRedis(redis.url);
  const queue = new JobQueue(redisConnection);
  const history = new TelemetryHistory(redisConnection, queue.store.keys);
  const client = new ControlClient(grpcAddress, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await queue.close();
    redisConnection.disconnect();
  });
  await until(
    async () => {
      const alive = (await queue.nodes()).filter((n) => n.alive).map((n) => n.name);
      return names.every((n) => alive.includes(n)) ? true : undefined;
    },
    30_000,
    'both node agents to register',
  );
  // Each agent announced the node it serves from inside its namespace.
  for (const [i, agent] of [agentA, agentB].entries())
    t.true(inNamespace(agent.pid!, net.nodes[i]!.namespace), `agent of ${names[i]} runs in its namespace`);

  const admin = new Metadata();
  admin.set('authorization', `Bearer ${ADMIN_TOKEN}`);
  const submit = async (name: string) => {
    const r = await unary<object, longctx.ISubmitJobResponse>(
      client,
      'submitJob',
      { specYaml: specYaml(name, dataPath) },
      admin,
    );
    if (!r.accepted) throw new Error(JSON.stringify(r.errors));
    return r.jobId!;
  };
  const running = (id: string, step: number) =>
    until(
      async () => {
        const [job, progress] = await Promise.all([queue.get(id), history.progress(id)]);
        return job?.state === 'RUNNING' &&
          job.pids.length === 2 &&
          job.pids.every(processAlive) &&
          progress &&
          progress.step >= step
          ? job
          : undefined;
      },
      90_000,
      `job ${id} to pass step ${step}`,
    );
  const ended = (id: string) =>
    until(
      async () => {
        const job = await queue.get(id);
        return job && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.state) ? job : undefined;
      },
      180_000,
      `job ${id} to end`,
    );

  // Two 2-device jobs on two 2-device nodes: one whole job on each.
  const steady = await submit('steady');
  const struck = await submit('struck');
  const [jobA, jobB] = [await running(steady, 1), await running(struck, 1)];
  t.deepEqual([jobA.node, jobB.node].sort(), names, 'one job on each node');
  const nodeIndex = (job: JobRecord) => names.indexOf(job.node!);
  for (const job of [jobA, jobB]) {
    for (const pid of job.pids)
      t.true(
        inNamespace(pid, net.nodes[nodeIndex(job)]!.namespace),
        `rank ${pid} of ${job.id} runs in ${job.node}'s namespace`,
      );
  }

  // The agent of the struck job's node dies mid-job; a new one takes the node over.
  const hit = await running(struck, 6);
  const hitIndex = nodeIndex(hit);
  const doomed = hitIndex === 0 ? agentA : agentB;
  const gone = new Promise((r) => doomed.once('exit', r));
  doomed.kill('SIGKILL');
  await gone;
  await until(
    () => (hit.pids.some(processAlive) ? undefined : true),
    30_000,
    'the struck gang to be torn down',
  );
  await startAgent(hitIndex);

  const [doneA, doneB] = [await ended(steady), await ended(struck)];
  t.is(doneA.state, 'SUCCEEDED', doneA.message);
  t.is(doneB.state, 'SUCCEEDED', doneB.message);
  t.is(doneA.attempt, 1, 'the other node was untouched');
  t.true(doneB.attempt >= 2, `relaunched (attempt ${doneB.attempt})`);
  // Relaunched on whichever node was free first: its checkpoints are in the shared runs folder.
  t.true(names.includes(doneB.node!), `relaunched on ${doneB.node}`);
  const resumed = (await history.workerEvents(struck)).find((e) => e.kind === 'resumed' && e.attempt >= 2);
  t.truthy(resumed, 'the relaunch resumed from a checkpoint');
  const weights = (id: string) =>
    readFile(join(runsDir, id, 'checkpoints', `step-${String(STEPS).padStart(8, '0')}`, 'model.safetensors'));
  t.true((await weights(struck)).equals(await weights(steady)), 'byte-identical to the run without a fault');

  // Everything made for the test goes with it.
  for (const agent of agents) {
    if (agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
  }
  await server.stop();
  server = undefined;
  await redis.stop();
  redis = undefined;
  const links = net.nodes.map((n) => n.hostLink);
  net.remove();
  for (const link of links) t.false(linkExists(link), `${link} removed`);
};

if (skipReason) test.skip(`several nodes on one Redis (skipped: ${skipReason})`, () => {});
else test.serial('two nodes in their own network namespaces share one Redis and one orchestrator', body);
