// Submitting through the Control service: every kind of bad spec is rejected with its field and
// reason, and nothing reaches the queue; a good spec is queued with the planner's choices.
import { credentials, makeGenericClientConstructor, type Client } from '@grpc/grpc-js';
import test from 'ava';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { startServer, type RunningServer } from '../../orchestrator/server.js';
import { controlService, type longctx } from '../../proto/services.js';
import { useRedis } from '../helpers/redis.js';

const redis = useRedis(test, {
  stopFirst: async () => {
    client?.close();
    await server?.stop();
  },
});
test.after.always(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});
let root = '';
let dataPath = '';
let shortPath = '';
let server: RunningServer;
let client: Client;
const ControlClient = makeGenericClientConstructor(controlService, 'Control');

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'longctx-submit-'));
  await synth(join(root, 'corpus.jsonl'), { docs: 40, seed: 2 });
  dataPath = (await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 2 }))
    .indexPath;
  await writeFile(join(root, 'short.jsonl'), JSON.stringify({ text: 'too short' }) + '\n');
  shortPath = (await pack({ inputs: [join(root, 'short.jsonl')], out: join(root, 'short.bin') })).indexPath;
  server = await startServer({
    redisUrl: redis().url,
    grpcPort: 0,
    httpPort: null,
    runsDir: join(root, 'runs'),
    localAgent: { devices: 8, deviceMemoryBytes: 64 * 2 ** 20, measureSgemm: false },
    log: () => {},
  });
  client = new ControlClient(server.grpcAddress, credentials.createInsecure());
});

function submit(specYaml: string): Promise<longctx.ISubmitJobResponse> {
  return new Promise((resolve, reject) =>
    (
      client as unknown as {
        submitJob(r: object, cb: (e: Error | null, r: longctx.ISubmitJobResponse) => void): void;
      }
    ).submitJob({ specYaml, specPath: join(root, 'job.yaml') }, (e, r) => (e ? reject(e) : resolve(r))),
  );
}

const good = () => `
name: good
model: { preset: tiny }
data: { path: ${dataPath} }
seq_len: 256
devices: 4
steps: 5
`;

const bad: [string, () => string, string, RegExp][] = [
  ['unknown field', () => good() + 'colour: blue\n', 'colour', /unknown field/],
  ['wrong type', () => good().replace('steps: 5', 'steps: five'), 'steps', /must be a number/],
  [
    'seq_len not divisible by 2·devices',
    () => good().replace('seq_len: 256', 'seq_len: 260'),
    'seq_len',
    /not divisible by 2 × devices = 8/,
  ],
  [
    'heads not divisible by kv_heads',
    () => good().replace('{ preset: tiny }', '{ preset: tiny, num_key_value_heads: 3 }'),
    'model.num_key_value_heads',
    /not divisible/,
  ],
  [
    'more devices than any node has',
    () => good().replace('devices: 4', 'devices: 16'),
    'devices',
    /16 requested but the largest node has 8/,
  ],
  [
    'infeasible memory',
    () => good().replace('{ preset: tiny }', '{ preset: small }').replace('seq_len: 256', 'seq_len: 262144'),
    'seq_len',
    /does not fit in device memory: needs .* GiB per device at best.*to fit, set/,
  ],
  ['negative steps', () => good().replace('steps: 5', 'steps: -5'), 'steps', /at least 1/],
  [
    'missing data file',
    () => good().replace(dataPath, join(root, 'nope.index.json')),
    'data.path',
    /nope|does not exist|missing|cannot/i,
  ],
  [
    'data file too short',
    () => good().replace(dataPath, shortPath),
    'data.path',
    /short|fewer|not enough|too/i,
  ],
  [
    'unknown preset',
    () => good().replace('preset: tiny', 'preset: gigantic'),
    'model.preset',
    /unknown preset/,
  ],
  [
    'GPUs that no node has',
    () => good().replace('devices: 4', 'resources: { accelerators: "H200:4" }'),
    'resources.accelerators',
    /^4 × H200 on one node needed, but no node has them \(.*: 8 emulated CPU devices\)$/,
  ],
  ['bad offload', () => good() + 'offload: tape\n', 'offload', /must be one of/],
  ['bad learning rate', () => good() + 'optimizer: { lr: -1 }\n', 'optimizer.lr', /greater than 0/],
  ['YAML syntax error', () => good() + 'steps: [\n', '', /YAML/],
];

for (const [what, yaml, path, reason] of bad) {
  test.serial(`rejected, nothing queued: ${what}`, async (t) => {
    const before = (await server.queue.list()).length;
    const r = await submit(yaml());
    t.false(r.accepted);
    const match = r.errors?.find((e) => e.path === path && reason.test(e.reason ?? ''));
    t.truthy(match, `expected ${path}: ${reason}; got ${JSON.stringify(r.errors)}`);
    t.is((await server.queue.list()).length, before);
  });
}

test.serial(
  'a truncated data file (size not matching its index) is rejected before any rank starts',
  async (t) => {
    const copy = join(root, 'cut.bin');
    const packed = await pack({ inputs: [join(root, 'corpus.jsonl')], out: copy, seed: 2 });
    await truncate(packed.tokenPath, 1000);
    const r = await submit(good().replace(dataPath, packed.indexPath));
    t.false(r.accepted);
    t.truthy(
      r.errors?.find((e) => e.path === 'data.path'),
      JSON.stringify(r.errors),
    );
  },
);

test.serial('a good spec is queued with the policies the planner chose', async (t) => {
  const r = await submit(good());
  t.true(r.accepted, JSON.stringify(r.errors));
  const job = await server.queue.get(r.jobId!);
  if (!job) return t.fail('the accepted job is not in the queue');
  t.is(String(job.spec.activation_checkpointing), String(r.plan?.activationCheckpointing));
  t.is(String(job.spec.offload), String(r.plan?.offload));
  t.not(job.spec.activation_checkpointing, 'auto');
  t.is(r.plan?.shards?.length, 4);
  t.true(Number(r.plan?.perRank?.total) > 0 && Number(r.plan?.perRank?.total) <= 64 * 2 ** 20 * 0.9);
  await server.queue.cancel(r.jobId!);
});
