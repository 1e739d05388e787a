// Node inventory, the rank launch contract and the recovery policy: the parts of the control
// plane that need neither Redis nor processes.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  DEFAULT_DEVICE_MEMORY,
  detectInventory,
  loadNodeFile,
  nativeSgemmRate,
  NodeFileError,
  parseBytes,
  parseNodeFile,
  parseNvidiaSmi,
} from '../../cluster/inventory.js';
import { RANK_ENV, rankLaunchEnv, rankLaunchFromEnv, type RankLaunch } from '../../core/rank-launch.js';
import { fromProtoJobState, JOB_STATES, toProtoJobState } from '../../control/job-record.js';
import { bullPriority } from '../../control/pending.js';
import { decideAfterFailure } from '../../control/recovery.js';
import { longctx } from '../../proto/gen/longctx.js';
import { tempDir } from '../helpers/control.js';

test('a node file sets the name, device count and per-device budget', (t) => {
  t.deepEqual(
    parseNodeFile('node: box-1\nkind: cpu\ndevices: 4\ndevice_memory: 512 MiB\nsgemm_gflops: 12.5\n'),
    {
      node: 'box-1',
      kind: 'cpu',
      devices: 4,
      device_memory: 512 * 1024 ** 2,
      sgemm_gflops: 12.5,
    },
  );
  t.deepEqual(parseNodeFile('{"devices": 2, "device_memory": 1048576}'), {
    devices: 2,
    device_memory: 1048576,
  });
  t.deepEqual(parseNodeFile(''), {});
  t.is(parseBytes('2GiB'), 2 * 1024 ** 3);
  t.is(parseBytes('1.5 GB'), 1.5e9);
  t.is(parseBytes('0'), undefined);
  t.is(parseBytes('12 parsecs'), undefined);
});

test('a bad node file reports every problem by field', (t) => {
  const error = t.throws(
    () =>
      parseNodeFile(
        'node: "bad name!"\nkind: tpu\ndevices: 0\ndevice_memory: lots\nsgemm_gflops: -1\nextra: 1\n',
        'n.yaml',
      ),
    { instanceOf: NodeFileError },
  );
  t.deepEqual(
    error.errors.map((e) => e.path),
    ['extra', 'node', 'kind', 'devices', 'device_memory', 'sgemm_gflops'],
  );
  t.regex(error.message, /^n\.yaml: extra: unknown field/m);
  t.regex(error.message, /^n\.yaml: devices: must be a whole number from 1 to 1024, got 0$/m);
  t.regex(
    error.message,
    /^n\.yaml: device_memory: must be a positive whole number of bytes or a size like '2 GiB', got "lots"$/m,
  );
  t.throws(() => parseNodeFile('[1, 2]'), { message: /must be a mapping/ });
  t.throws(() => parseNodeFile('devices: [\n'), { message: /YAML/ });
  t.throws(() => loadNodeFile('/nonexistent/node.yaml'), {
    message: '/nonexistent/node.yaml: (root): file does not exist',
  });
});

test('nvidia-smi CSV lines become GPUs with their memory in bytes', (t) => {
  const csv = '0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA H100 80GB HBM3, 81559\n\n';
  t.deepEqual(parseNvidiaSmi(csv), [
    { index: 0, name: 'NVIDIA H100 80GB HBM3', memoryBytes: 81559 * 1024 * 1024 },
    { index: 1, name: 'NVIDIA H100 80GB HBM3', memoryBytes: 81559 * 1024 * 1024 },
  ]);
  t.is(parseNvidiaSmi('').length, 0);
  t.throws(() => parseNvidiaSmi('0, broken\n'), {
    message: "nvidia-smi: cannot read the line '0, broken' (expected 'index, name, memory MiB')",
  });
});

test('without GPUs a node has 8 emulated CPU devices of 2 GiB unless its file says otherwise', async (t) => {
  const plain = await detectInventory({
    nvidiaSmi: '/nonexistent/nvidia-smi',
    addonGpus: false,
    hostname: 'host.example',
    cores: 16,
  });
  t.is(plain.kind, 'cpu');
  t.is(plain.node, 'host.example');
  t.is(plain.devices.length, 8);
  t.true(plain.devices.every((d, i) => d.index === i && d.memoryBytes === DEFAULT_DEVICE_MEMORY));
  t.is(plain.threadsPerDevice, 2);
  t.is(plain.sgemmGflops, undefined);

  const threads: number[] = [];
  const shaped = await detectInventory({
    nodeFile: { node: 'n1', devices: 3, device_memory: 1 << 28 },
    nvidiaSmi: false,
    cores: 2,
    measureSgemm: (n) => {
      threads.push(n);
      return Promise.resolve(42);
    },
  });
  t.like(shaped, { node: 'n1', kind: 'cpu', threadsPerDevice: 1, sgemmGflops: 42 });
  t.deepEqual(
    shaped.devices.map((d) => d.memoryBytes),
    [1 << 28, 1 << 28, 1 << 28],
  );
  t.deepEqual(threads, [1], 'the rate is measured with one device’s share of the cores');
  const given = await detectInventory({
    nodeFile: { sgemm_gflops: 7 },
    nvidiaSmi: false,
    measureSgemm: () => Promise.reject(new Error('not called')),
  });
  t.is(given.sgemmGflops, 7);

  const noGpu = await t.throwsAsync(
    detectInventory({ nodeFile: { kind: 'cuda' }, nvidiaSmi: '/nonexistent/nvidia-smi', addonGpus: false }),
    {
      instanceOf: NodeFileError,
    },
  );
  t.deepEqual(noGpu.errors, [
    { path: 'kind', reason: "'cuda' but neither the CUDA runtime nor nvidia-smi sees a GPU" },
  ]);
});

test('the sgemm rate the planner needs is measured by the native addon', async (t) => {
  const inventory = await detectInventory({
    nodeFile: { devices: 2 },
    nvidiaSmi: false,
    cores: 2,
    measureSgemm: nativeSgemmRate(192, 2),
  });
  // A real measurement: any CPU of this century does well over 0.1 GFLOP/s in float32 GEMM.
  t.true(inventory.sgemmGflops! > 0.1 && Number.isFinite(inventory.sgemmGflops), `${inventory.sgemmGflops}`);
});

test('a node file on disk is read as YAML or JSON', async (t) => {
  const dir = await tempDir('nodefile');
  t.teardown(() => dir.remove());
  writeFileSync(join(dir.path, 'node.json'), JSON.stringify({ node: 'j', devices: 2 }));
  t.deepEqual(loadNodeFile(join(dir.path, 'node.json')), { node: 'j', devices: 2 });
});

test("a node file's address is where its ranks listen for peers on other nodes; a bad one names the file and field", async (t) => {
  t.deepEqual(parseNodeFile('node: a\naddress: 169.254.7.10\n'), { node: 'a', address: '169.254.7.10' });
  t.deepEqual(parseNodeFile('address: "fe80::1"'), { address: 'fe80::1' });
  for (const [text, reason] of [
    ['address: node-b.local', /address: must be an IPv4 or IPv6 address of this machine/],
    ['address: 10.0.0', /address: must be an IPv4 or IPv6 address/],
    ['address: 0.0.0.0', /address: must be one address the other nodes reach, not 0\.0\.0\.0/],
    ['address: 7', /address: must be an IPv4 or IPv6 address/],
  ] as const) {
    const err = t.throws(() => parseNodeFile(text, 'nodes/b.yaml'), { instanceOf: NodeFileError });
    t.regex(err.message, /^nodes\/b\.yaml: /);
    t.regex(err.message, reason);
  }
  const base = { nvidiaSmi: false as const, cores: 2, nodeFilePath: 'nodes/b.yaml' };
  const inventory = await detectInventory({
    ...base,
    nodeFile: { node: 'b', kind: 'cpu', devices: 2, address: '169.254.7.11' },
    localAddresses: ['127.0.0.1', '169.254.7.11'],
  });
  t.is(inventory.address, '169.254.7.11');
  const unset = await detectInventory({ ...base, nodeFile: { node: 'b', kind: 'cpu', devices: 2 } });
  t.is(unset.address, undefined, 'ranks listen on 127.0.0.1 (one node)');
  await t.throwsAsync(
    detectInventory({
      ...base,
      nodeFile: { node: 'b', kind: 'cpu', address: '169.254.7.99' },
      localAddresses: ['127.0.0.1', '169.254.7.11'],
    }),
    {
      instanceOf: NodeFileError,
      message:
        'nodes/b.yaml: address: 169.254.7.99 is not an address of this machine (it has 127.0.0.1, 169.254.7.11)',
    },
  );
});

const launch: RankLaunch = {
  jobId: 'demo-1-ab12',
  jobName: 'demo',
  attempt: 2,
  rank: 3,
  worldSize: 8,
  node: 'n1',
  deviceKind: 'cpu',
  deviceIndex: 5,
  deviceBudgetBytes: 2147483648,
  threads: 1,
  rendezvous: {
    redisUrl: 'redis://127.0.0.1:6379',
    prefix: 'longctx/demo-1-ab12/2',
    bindHost: '169.254.3.10',
  },
  telemetry: { address: '127.0.0.1:50051', token: 'secret' },
  runDir: '/runs/demo-1-ab12',
  checkpointsDir: '/runs/demo-1-ab12/checkpoints',
  specFile: '/runs/demo-1-ab12/spec.json',
  resume: { step: 200, dir: '/runs/demo-1-ab12/checkpoints/step-00000200' },
  agentPid: 1234,
};

test('a rank launch survives the trip through environment variables', (t) => {
  const env = rankLaunchEnv(launch, '/runs/x/rank-3.json');
  t.is(env[RANK_ENV.rank], '3');
  t.is(env[RANK_ENV.rendezvousPrefix], 'longctx/demo-1-ab12/2');
  t.is(env[RANK_ENV.launchFile], '/runs/x/rank-3.json');
  t.deepEqual(rankLaunchFromEnv(env), launch);
  const { resume: _resume, ...fresh } = launch;
  t.deepEqual(rankLaunchFromEnv(rankLaunchEnv(fresh)), fresh);
});

test('a malformed rank environment is an error naming the variable', (t) => {
  const env = rankLaunchEnv(launch);
  t.throws(() => rankLaunchFromEnv({ ...env, LONGCTX_RANK: 'x' }), {
    message: "LONGCTX_RANK: must be a whole number ≥ 0, got 'x'",
  });
  t.throws(() => rankLaunchFromEnv({ ...env, LONGCTX_RANK: '8' }), {
    message: 'LONGCTX_RANK: 8 is not below LONGCTX_WORLD_SIZE 8',
  });
  t.throws(() => rankLaunchFromEnv({ ...env, LONGCTX_TELEMETRY_TOKEN: undefined }), {
    message: 'LONGCTX_TELEMETRY_TOKEN is not set: this process must be started by the longctx node agent',
  });
  t.throws(() => rankLaunchFromEnv({ ...env, LONGCTX_DEVICE_KIND: 'tpu' }), {
    message: "LONGCTX_DEVICE_KIND: must be 'cpu' or 'cuda', got 'tpu'",
  });
});

test('recovery: exponential backoff up to max_restarts, then FAILED; a drained node does not count', (t) => {
  const policy = { baseMs: 1000, maxMs: 5000 };
  const failure = { cause: 'rank-failed' as const, message: 'rank 1 exited with code 3' };
  const backoffs = [0, 1, 2, 3].map((restarts) => {
    const d = decideAfterFailure({ restarts, maxRestarts: 5 }, failure, policy, 10_000);
    return d.state === 'RECOVERING' ? [d.backoffMs, d.retryAt] : [];
  });
  t.deepEqual(backoffs, [
    [1000, 11_000],
    [2000, 12_000],
    [4000, 14_000],
    [5000, 15_000],
  ]);
  const first = decideAfterFailure({ restarts: 0, maxRestarts: 2 }, failure, policy, 0);
  t.deepEqual(first, {
    state: 'RECOVERING',
    retryAt: 1000,
    backoffMs: 1000,
    countRestart: true,
    message: 'rank 1 exited with code 3; restart 1 of 2 from the newest valid checkpoint after 1000 ms',
  });
  t.deepEqual(decideAfterFailure({ restarts: 2, maxRestarts: 2 }, failure, policy, 0), {
    state: 'FAILED',
    message: 'rank 1 exited with code 3; no restarts left (max_restarts 2)',
  });
  const drained = decideAfterFailure(
    { restarts: 2, maxRestarts: 2 },
    { cause: 'agent-stopped', message: 'SIGTERM' },
    policy,
    0,
  );
  t.like(drained, { state: 'RECOVERING', countRestart: false });
});

test('job states map onto the proto enum, and spec priority onto BullMQ priority', (t) => {
  for (const state of JOB_STATES) t.is(fromProtoJobState(toProtoJobState(state)), state);
  t.is(toProtoJobState('QUEUED'), longctx.JobState.JOB_STATE_QUEUED);
  t.is(toProtoJobState('CANCELLED'), longctx.JobState.JOB_STATE_CANCELLED);
  t.is(fromProtoJobState(longctx.JobState.JOB_STATE_UNSPECIFIED), undefined);
  // BullMQ runs lower numbers first: higher spec priority → lower number, recovering before fresh.
  t.true(bullPriority(100, false) < bullPriority(99, true));
  t.true(bullPriority(5, true) < bullPriority(5, false));
  t.is(bullPriority(100, true), 1);
  t.is(bullPriority(0, false), 202);
});

test('ranks_per_gpu presents each GPU as several devices with a share of its memory, driving the GPU', async (t) => {
  // A stand-in nvidia-smi (the addon is told not to look): two GPUs of 1000 MiB.
  const dir = await tempDir('ranks-per-gpu');
  t.teardown(() => dir.remove());
  const smi = join(dir.path, 'nvidia-smi');
  writeFileSync(smi, '#!/bin/sh\necho "0, NVIDIA H200, 1000"\necho "1, NVIDIA H200, 1000"\n', {
    mode: 0o755,
  });
  const mib = 1024 * 1024;
  const shared = await detectInventory({
    nodeFile: parseNodeFile('ranks_per_gpu: 2\n'),
    nvidiaSmi: smi,
    addonGpus: false,
    cores: 8,
  });
  t.is(shared.kind, 'cuda');
  t.deepEqual(shared.devices, [
    { index: 0, ordinal: 0, name: 'NVIDIA H200', memoryBytes: 500 * mib },
    { index: 1, ordinal: 0, name: 'NVIDIA H200', memoryBytes: 500 * mib },
    { index: 2, ordinal: 1, name: 'NVIDIA H200', memoryBytes: 500 * mib },
    { index: 3, ordinal: 1, name: 'NVIDIA H200', memoryBytes: 500 * mib },
  ]);
  const plain = await detectInventory({ nvidiaSmi: smi, addonGpus: false });
  t.deepEqual(
    plain.devices.map((d) => [d.index, d.ordinal, d.memoryBytes]),
    [
      [0, undefined, 1000 * mib],
      [1, undefined, 1000 * mib],
    ],
  );
  for (const [text, reason] of [
    ['ranks_per_gpu: 0\n', 'must be a whole number from 1 to 64, got 0'],
    ['kind: cpu\nranks_per_gpu: 2\n', "is for GPU nodes, but kind is 'cpu'"],
  ] as const) {
    const err = t.throws(() => parseNodeFile(text), { instanceOf: NodeFileError });
    t.deepEqual(err.errors, [{ path: 'ranks_per_gpu', reason }]);
  }
});
