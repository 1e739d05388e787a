// A gang that spans two nodes. Three network namespaces stand for three machines on one
// link-local segment (169.254.0.0/16, test/helpers/netns.ts); one orchestrator and one Redis listen
// on this host's address there, and the runs folder is shared. A 4-device job first runs whole on
// a 4-device node (the reference); then, with only two 2-device nodes up (no node can hold it),
// the same job runs split across them: ranks 0-1 in one namespace, 2-3 in the other, each rank
// listening on its node's address (node file `address`) so gloo connects across the namespaces.
// Its per-step losses are bitwise those of the reference: the same world size gives the same
// zigzag shards and the same reduction order, wherever the ranks run. Then one node's agent is
// killed with SIGKILL mid-job: the gang goes on BOTH nodes (no rank is left in either
// namespace), is placed again, resumes from its checkpoint and ends with the reference's final
// weights, byte for byte. Skipped with the reason where `ip netns` is not permitted.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
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
import type { RankLaunch } from '../../core/rank-launch.js';
import { repoRoot } from '../../core/repo-root.js';
import { attemptDir, launchFileName } from '../../core/run-folder.js';
import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { startServer, type RunningServer } from '../../orchestrator/server.js';
import type { longctx } from '../../proto/services.js';
import { ControlClient, unary, until } from '../helpers/cli-server.js';
import { AGENT_MAIN } from '../helpers/control.js';
import {
  createLinkLocalNodes,
  inNamespace,
  linkExists,
  netnsSkipReason,
  type LinkLocalNodes,
} from '../helpers/netns.js';

const skipReason = netnsSkipReason();
const STEPS = 16;
const ADMIN_TOKEN = 'spanning-test-token';
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
  for (const agent of agents) await stopAgent(agent);
  await server?.stop();
  await redis?.stop();
  net?.remove();
  if (root) await rm(root, { recursive: true, force: true });
});

async function stopAgent(agent: ChildProcess): Promise<void> {
  if (agent.exitCode !== null || agent.signalCode !== null) return;
  const exited = new Promise((r) => agent.once('exit', r));
  agent.kill('SIGTERM');
  await exited;
}

/** Pids of the processes in a namespace (`ip netns pids`). */
function pidsIn(namespace: string): number[] {
  return execFileSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

function specYaml(name: string, dataPath: string): string {
  return `
name: ${name}
model: { preset: tiny }
data: { path: ${dataPath} }
seq_len: 256
devices: 4
steps: ${STEPS}
optimizer: { lr: 3.0e-3 }
checkpoint: { every: 4, keep: 2 }
max_restarts: 8
`;
}

const body = async (t: ExecutionContext) => {
  root = await mkdtemp(join(tmpdir(), 'longctx-spanning-'));
  await synth(join(root, 'corpus.jsonl'), { docs: 150, seed: 11 });
  const dataPath = (
    await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 11 })
  ).indexPath;
  const runsDir = join(root, 'runs'); // shared by every node, as a network file system would be

  // Third octets 1..99: test/e2e/nodes.test.ts, which may run at the same time, takes 100..249.
  net = createLinkLocalNodes(3, 1 + (process.pid % 99));
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

  // node-a runs `longctx agent` as an operator would; the others the agent entry point with short
  // leases, so a killed agent's node is taken over quickly.
  const startAgent = async (name: string, slot: number, devices: number, cli = false) => {
    const node = net!.nodes[slot]!;
    const nodeFile = join(root, `${name}.yaml`);
    await writeFile(
      nodeFile,
      `node: ${name}\nkind: cpu\ndevices: ${devices}\ndevice_memory: 256MiB\nsgemm_gflops: 20\naddress: ${node.address}\n`,
    );
    const common = ['--redis', redis!.url, '--runs', runsDir, '--node-file', nodeFile];
    const command = cli
      ? [CLI_MAIN, 'agent', '--server', grpcAddress, ...common]
      : [
          AGENT_MAIN,
          '--telemetry',
          grpcAddress,
          ...common,
          ...['--lease-ms', '3000', '--lock-ms', '4000', '--stalled-ms', '2000', '--grace-ms', '3000'],
        ];
    const agent = spawn('ip', ['netns', 'exec', node.namespace, process.execPath, ...command], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    agents.push(agent);
    return agent;
  };

  const redisConnection = connectRedis(redis.url);
  const queue = new JobQueue(redisConnection);
  const history = new TelemetryHistory(redisConnection, queue.store.keys);
  const client = new ControlClient(grpcAddress, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await queue.close();
    redisConnection.disconnect();
  });
  const alive = (names: string[]) =>
    until(
      async () => {
        const up = (await queue.nodes()).filter((n) => n.alive).map((n) => n.name);
        return names.every((n) => up.includes(n)) && up.length === names.length ? true : undefined;
      },
      30_000,
      `exactly ${names.join(', ')} to be alive`,
    );
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
          job.pids.length === 4 &&
          job.pids.every(processAlive) &&
          progress &&
          progress.attempt === job.attempt &&
          progress.step >= step
          ? job
          : undefined;
      },
      120_000,
      `job ${id} to pass step ${step}`,
    );
  const ended = (id: string) =>
    until(
      async () => {
        const job = await queue.get(id);
        return job && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.state) ? job : undefined;
      },
      240_000,
      `job ${id} to end`,
    );
  const weights = (id: string) =>
    readFile(join(runsDir, id, 'checkpoints', `step-${String(STEPS).padStart(8, '0')}`, 'model.safetensors'));
  const losses = async (id: string) => (await history.steps(id)).map((s) => [s.step, s.loss]);

  // 1. The reference: the job whole on one 4-device node.
  const one = await startAgent('node-one', 2, 4);
  await alive(['node-one']);
  const reference = await submit('reference');
  const referenceDone = await ended(reference);
  t.is(referenceDone.state, 'SUCCEEDED', referenceDone.message);
  t.deepEqual(
    referenceDone.shares.map((s) => s.node),
    ['node-one'],
  );
  await stopAgent(one); // gives up its lease: from now on no node can hold the job whole

  // 2. Two 2-device nodes: the same job spans them.
  const nodeA = await startAgent('node-a', 0, 2, true);
  let nodeB = await startAgent('node-b', 1, 2);
  await alive(['node-a', 'node-b']);
  const spanning = await submit('spanning');
  const job = await running(spanning, 1);
  t.deepEqual(
    job.shares.map((s) => [s.node, s.firstRank, s.devices]),
    [
      ['node-a', 0, [0, 1]],
      ['node-b', 2, [0, 1]],
    ],
  );
  const namespaces = [net.nodes[0]!, net.nodes[0]!, net.nodes[1]!, net.nodes[1]!];
  for (const [rank, pid] of job.pids.entries()) {
    t.true(inNamespace(pid, namespaces[rank]!.namespace), `rank ${rank} runs in its node's namespace`);
    const launch = JSON.parse(
      await readFile(join(attemptDir(join(runsDir, spanning), 1), launchFileName(rank)), 'utf8'),
    ) as RankLaunch;
    t.like(launch, {
      rank,
      worldSize: 4,
      node: rank < 2 ? 'node-a' : 'node-b',
      rendezvous: { prefix: `longctx/${spanning}/1`, bindHost: namespaces[rank]!.address },
    });
  }
  const spanningDone = await ended(spanning);
  t.is(spanningDone.state, 'SUCCEEDED', spanningDone.message);
  t.is(spanningDone.attempt, 1);
  const referenceLosses = await losses(reference);
  t.is(referenceLosses.length, STEPS);
  t.deepEqual(await losses(spanning), referenceLosses, 'per-step losses bitwise equal to one node');
  t.log(`losses (reference = spanning): ${referenceLosses.map(([s, l]) => `${s}:${l}`).join(' ')}`);
  t.true((await weights(spanning)).equals(await weights(reference)), 'final weights byte-identical');

  // 3. The same with node-b's agent killed mid-job.
  const struck = await submit('struck');
  const hit = await running(struck, 6); // past the checkpoint at step 4
  const gone = new Promise((r) => nodeB.once('exit', r));
  nodeB.kill('SIGKILL');
  await gone;
  await until(
    () => (hit.pids.some(processAlive) ? undefined : true),
    30_000,
    'the gang to be torn down on both nodes',
  );
  t.deepEqual(pidsIn(net.nodes[1]!.namespace), [], "nothing left in node-b's namespace");
  t.deepEqual(pidsIn(net.nodes[0]!.namespace), [nodeA.pid], "only node-a's agent left in its namespace");
  nodeB = await startAgent('node-b', 1, 2);
  const struckDone: JobRecord = await ended(struck);
  t.is(struckDone.state, 'SUCCEEDED', struckDone.message);
  t.true(struckDone.attempt >= 2, `relaunched (attempt ${struckDone.attempt})`);
  t.log(
    `struck: attempt ${struckDone.attempt}, restarts ${struckDone.restarts}; ` +
      (await queue.history(struck)).map((e) => `${e.state}: ${e.message}`).join(' | '),
  );
  t.deepEqual(
    struckDone.shares.map((s) => s.node),
    ['node-a', 'node-b'],
  );
  const resumed = (await history.workerEvents(struck)).find((e) => e.kind === 'resumed' && e.attempt >= 2);
  t.truthy(resumed, 'the relaunch resumed from a checkpoint');
  t.true((await weights(struck)).equals(await weights(reference)), 'byte-identical to the reference');

  // Everything made for the test goes with it.
  for (const agent of agents) await stopAgent(agent);
  for (const node of net.nodes) t.deepEqual(pidsIn(node.namespace), [], `${node.namespace} is empty`);
  await server.stop();
  server = undefined;
  await redis.stop();
  redis = undefined;
  const links = [...net.nodes.map((n) => n.hostLink), net.bridge];
  net.remove();
  for (const link of links) t.false(linkExists(link), `${link} removed`);
};

if (skipReason) test.skip(`a gang across two nodes (skipped: ${skipReason})`, () => {});
else
  test.serial('a 4-rank gang spans two 2-device nodes, matches one node, and survives an agent kill', body);
