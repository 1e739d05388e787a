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
import { execFileSync } from 'node:child_process';
import test, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { processAlive } from '../../cluster/process-groups.js';
import type { JobRecord } from '../../control/job-record.js';
import type { RankLaunch } from '../../core/rank-launch.js';
import { attemptDir, launchFileName } from '../../core/run-folder.js';
import { until } from '../helpers/cli-server.js';
import { startLinkLocalCluster, type LinkLocalCluster } from '../helpers/link-local-cluster.js';
import { inNamespace, linkExists, netnsSkipReason } from '../helpers/netns.js';
import { trainingSpecYaml } from '../helpers/control.js';

const skipReason = netnsSkipReason();
const STEPS = 16;

let cluster: LinkLocalCluster | undefined;
test.after.always(() => cluster?.close());

/** Pids of the processes in a namespace (`ip netns pids`). */
function pidsIn(namespace: string): number[] {
  return execFileSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

const body = async (t: ExecutionContext) => {
  // Third octets 1..99: test/e2e/nodes.test.ts, which may run at the same time, takes 100..249.
  const c = (cluster = await startLinkLocalCluster({ nodes: 3, subnet: 1 + (process.pid % 99), seed: 11 }));
  const { net, queue, history, runsDir } = c;
  const alive = (names: string[]) =>
    until(
      async () => {
        const up = (await queue.nodes()).filter((n) => n.alive).map((n) => n.name);
        return names.every((n) => up.includes(n)) && up.length === names.length ? true : undefined;
      },
      30_000,
      `exactly ${names.join(', ')} to be alive`,
    );
  const submit = (name: string) =>
    c.submit(trainingSpecYaml({ name, dataPath: c.dataPath, devices: 4, steps: STEPS, maxRestarts: 8 }));
  const running = (id: string, step: number) => c.running(id, step, 4, 120_000);
  const ended = (id: string) => c.ended(id, 240_000);
  const weights = (id: string) => c.weights(id, STEPS);
  const losses = async (id: string) => (await history.steps(id)).map((s) => [s.step, s.loss]);

  // 1. The reference: the job whole on one 4-device node.
  const one = await c.startAgent({ name: 'node-one', slot: 2, devices: 4 });
  await alive(['node-one']);
  const reference = await submit('reference');
  const referenceDone = await ended(reference);
  t.is(referenceDone.state, 'SUCCEEDED', referenceDone.message);
  t.deepEqual(
    referenceDone.shares.map((s) => s.node),
    ['node-one'],
  );
  await c.stopAgent(one); // gives up its lease: from now on no node can hold the job whole

  // 2. Two 2-device nodes: the same job spans them.
  const nodeA = await c.startAgent({ name: 'node-a', slot: 0, devices: 2, cli: true });
  const nodeB = await c.startAgent({ name: 'node-b', slot: 1, devices: 2 });
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
  await c.startAgent({ name: 'node-b', slot: 1, devices: 2 });
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
  await c.stopAgents();
  for (const node of net.nodes) t.deepEqual(pidsIn(node.namespace), [], `${node.namespace} is empty`);
  const links = [...net.nodes.map((n) => n.hostLink), net.bridge];
  await c.close();
  for (const link of links) t.false(linkExists(link), `${link} removed`);
};

if (skipReason) test.skip(`a gang across two nodes (skipped: ${skipReason})`, () => {});
else
  test.serial('a 4-rank gang spans two 2-device nodes, matches one node, and survives an agent kill', body);
