// Several nodes on one Redis, as separate machines: two network namespaces joined to this host by
// veth pairs in 169.254.0.0/16, a node agent in each (`longctx agent`, as on a real machine, and
// `cluster/agent-main.js`), one orchestrator and one Redis listening on a link-local address of this host. Each
// node trains a job whole (a gang is never split across nodes), its ranks running inside the
// node's namespace and reaching Redis and the Telemetry service over the veth; the runs folder is
// shared. The agent of one node is killed with SIGKILL mid-job: its gang is torn down, a new agent
// of that node relaunches it from its checkpoint, and it ends byte-identical to the job the other
// node ran without a fault. Skipped with the reason where `ip netns` is not permitted.
import test, { type ExecutionContext } from 'ava';

import { processAlive } from '../../cluster/process-groups.js';
import type { JobRecord } from '../../control/job-record.js';
import { until } from '../helpers/cli-server.js';
import { startLinkLocalCluster, type LinkLocalCluster } from '../helpers/link-local-cluster.js';
import { inNamespace, linkExists, netnsSkipReason } from '../helpers/netns.js';
import { trainingSpecYaml } from '../helpers/control.js';

const skipReason = netnsSkipReason();
const STEPS = 24;

let cluster: LinkLocalCluster | undefined;
test.after.always(() => cluster?.close());

const body = async (t: ExecutionContext) => {
  // Third octets 100..249: test/e2e/spanning.test.ts, which may run at the same time, takes 1..99.
  const c = (cluster = await startLinkLocalCluster({ nodes: 2, subnet: 100 + (process.pid % 150), seed: 9 }));
  const { net, queue, history } = c;
  t.true(c.grpcAddress.startsWith('169.254.'), c.grpcAddress);

  // node-a runs `longctx agent` as an operator would; node-b the agent entry point with short
  // leases and timeouts, so its relaunch after the kill below is quick.
  const names = ['node-a', 'node-b'];
  const startAgent = (i: number) => c.startAgent({ name: names[i]!, slot: i, devices: 2, cli: i === 0 });
  const agentA = await startAgent(0);
  const agentB = await startAgent(1);
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

  const submit = (name: string) =>
    c.submit(trainingSpecYaml({ name, dataPath: c.dataPath, devices: 2, steps: STEPS }));
  const running = (id: string, step: number) => c.running(id, step, 2, 90_000);
  const ended = (id: string) => c.ended(id, 180_000);

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
  t.true(
    (await c.weights(struck, STEPS)).equals(await c.weights(steady, STEPS)),
    'byte-identical to the run without a fault',
  );

  // Everything made for the test goes with it.
  const links = net.nodes.map((n) => n.hostLink);
  await c.close();
  for (const link of links) t.false(linkExists(link), `${link} removed`);
};

if (skipReason) test.skip(`several nodes on one Redis (skipped: ${skipReason})`, () => {});
else test.serial('two nodes in their own network namespaces share one Redis and one orchestrator', body);
