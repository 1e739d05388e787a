// Admission (orchestrator/plan/admission.ts) for node tables as the control state holds them: the
// device a job is planned for, the errors that keep it out of the queue, and the share of a node's
// cores an emulated device really gets (the time model and the MFU peak both use it).
import test from 'ava';

import type { NodeStatus } from '../../control/store.js';
import { admit, nodeDeviceProfile, planningTarget } from '../../orchestrator/plan/admission.js';
import { emulatedDeviceGflops } from '../../orchestrator/plan/devices.js';
import { planJob } from '../../orchestrator/plan/planner.js';
import { parseSpec } from '../../orchestrator/spec/validate.js';

const GiB = 2 ** 30;

function node(name: string, o: Partial<NodeStatus> & { devices: number }): NodeStatus {
  return {
    name,
    hostname: name,
    kind: 'cpu',
    deviceNames: Array.from({ length: o.devices }, () => 'cpu'),
    deviceMemoryBytes: Array.from({ length: o.devices }, () => 2 * GiB),
    threadsPerDevice: 1,
    alive: true,
    heldBy: new Map(),
    updatedAt: 0,
    ...o,
  };
}

const h200s = (n: number) =>
  node('gpu-1', {
    kind: 'cuda',
    devices: n,
    deviceNames: Array.from({ length: n }, () => 'NVIDIA H200'),
    deviceMemoryBytes: Array.from({ length: n }, () => 140 * GiB),
  });

const spec = (devices: string) => `
name: t
model: { preset: tiny }
data: { path: /nonexistent/corpus.tokens }
seq_len: 64
${devices}
steps: 10
`;

test('more devices than all nodes together have, or no node at all, is a field error on devices', async (t) => {
  const nodes = [node('n8', { devices: 8 }), node('n4', { devices: 4 })];
  const huge = await admit(spec('devices: 16').replace('seq_len: 64', 'seq_len: 256'), '', nodes, {
    checkData: false,
  });
  t.false(huge.ok);
  t.deepEqual(huge.errors, [
    { path: 'devices', reason: '16 requested but the largest node has 8 and all nodes together 12' },
  ]);
  // More than any one node has but not more than both: the gang will span the two nodes.
  const spanning = await admit(spec('devices: 12').replace('seq_len: 64', 'seq_len: 240'), '', nodes, {
    checkData: false,
  });
  t.deepEqual(spanning.errors, []);
  t.true(spanning.ok);
  const none = await admit(spec('devices: 1'), '', [], { checkData: false });
  t.deepEqual(none.errors, [{ path: 'devices', reason: '1 requested but no node agent has registered' }]);
  t.is(none.plan, undefined);
});

test('the data file is checked on submit and not by a local plan', async (t) => {
  const nodes = [node('n8', { devices: 8, sgemmGflops: 10 })];
  const submit = await admit(spec('devices: 4'), '', nodes, { checkData: true });
  t.deepEqual(
    submit.errors.map((e) => e.path),
    ['data.path'],
  );
  const local = await admit(spec('devices: 4'), '', nodes, { checkData: false });
  t.true(local.ok);
  t.is(local.spec?.activation_checkpointing, local.plan?.activationCheckpointing, 'auto is resolved');
});

test('a job naming GPUs that no node has is planned for their datasheet and refused', async (t) => {
  const cpuOnly = [node('vm', { devices: 8, sgemmGflops: 10, cores: 2 })];
  const r = await admit(spec('resources: { accelerators: "H200:8" }'), '', cpuOnly, { checkData: false });
  t.false(r.ok);
  t.deepEqual(r.missingAccelerators, { name: 'H200', count: 8 });
  t.deepEqual(r.errors, [
    {
      path: 'resources.accelerators',
      reason: '8 × H200 on one node needed, but no node has them (vm: 8 emulated CPU devices)',
    },
  ]);
  t.like(r.target?.device, { kind: 'cuda', name: 'H200-141GB', memoryBytes: 141 * GiB, peakFlops: 989e12 });
  t.true(r.plan?.feasible);

  // The same job where a node has them: planned for that node's memory, admitted.
  const ok = await admit(spec('resources: { accelerators: "H200:8" }'), '', [...cpuOnly, h200s(8)], {
    checkData: false,
  });
  t.true(ok.ok, JSON.stringify(ok.errors));
  t.is(ok.target?.node?.name, 'gpu-1');
  t.is(ok.target?.device.memoryBytes, 140 * GiB);
  // Too few of them is the same refusal.
  const few = await admit(spec('resources: { accelerators: "H200:8" }'), '', [h200s(4)], {
    checkData: false,
  });
  t.is(few.errors[0]?.path, 'resources.accelerators');
});

test('a job without accelerators is planned for the most constrained node that can hold it', (t) => {
  const small = node('small', { devices: 8, deviceMemoryBytes: Array.from({ length: 8 }, () => GiB) });
  const big = node('big', { devices: 8 });
  const few = node('few', { devices: 2, deviceMemoryBytes: [GiB / 2, GiB / 2] });
  const target = planningTarget([big, small, few], { devices: 4 });
  t.is(target?.node?.name, 'small', 'the 2-device node cannot hold 4 ranks');
  t.is(target?.largest, 8);
});

test('emulated devices beyond the cores get their share of the measured rate', (t) => {
  t.is(emulatedDeviceGflops(10, 8, 2), 2.5);
  t.is(emulatedDeviceGflops(10, 8, 16), 10, 'never more than the rate measured for one device');
  t.is(emulatedDeviceGflops(10, 8, undefined), 10, 'an inventory without cores is taken as it is');
  // The planner's device and the MFU peak: 8 devices on 2 cores at 40 GFLOP/s each alone.
  const shared = nodeDeviceProfile(node('vm', { devices: 8, sgemmGflops: 40, cores: 2 }));
  t.is(shared.peakFlops, 10e9);
  const roomy = nodeDeviceProfile(node('big', { devices: 8, sgemmGflops: 40, cores: 8 }));
  t.is(roomy.peakFlops, 40e9);
  // GPUs are not shared this way: a known GPU keeps its datasheet peak.
  t.is(nodeDeviceProfile({ ...h200s(8), cores: 2 }).peakFlops, 989e12);

  // The step time follows: compute is 4× slower on the shared node; the ring and copies are not
  // scaled, so the whole step is between 1× and 4× (and near 4× for this compute-bound spec).
  const parsed = parseSpec(
    spec('devices: 8').replace('preset: tiny', 'preset: small').replace('seq_len: 64', 'seq_len: 4096'),
  );
  if (!parsed.ok) return t.fail(JSON.stringify(parsed.errors));
  const ratio = planJob(parsed.spec, shared).stepSeconds / planJob(parsed.spec, roomy).stepSeconds;
  t.true(ratio > 3 && ratio <= 4, `step time ratio ${ratio}`);
});
