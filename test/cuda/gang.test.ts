// A GPU job through the whole control plane: a node whose file presents its first GPU as two
// devices (ranks_per_gpu: 2), a 2-rank job of the `small` preset (head_dim 64) gang-scheduled on
// them, both ranks driving CUDA device 0 and finding for themselves that NCCL cannot serve ranks
// that share a GPU. Needs a GPU (and redis-server).
import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { rankLogFileName, runFolder } from '../../core/run-folder.js';
import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { startServer } from '../../orchestrator/server.js';
import { useRedis } from '../helpers/redis.js';
import { submitSpec, waitForEnd } from '../helpers/submit.js';
import { gpuTest } from './gpu.js';

const redis = useRedis(test);

gpuTest(
  'a 2-rank job on two devices that are one GPU trains to the end, staged through host memory',
  async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'longctx-gpu-gang-'));
    t.teardown(() => rm(root, { recursive: true, force: true }));
    await synth(join(root, 'corpus.jsonl'), { docs: 60, seed: 5 });
    const packed = await pack({
      inputs: [join(root, 'corpus.jsonl')],
      out: join(root, 'corpus.bin'),
      seed: 5,
    });
    const nodeFile = join(root, 'node.yaml');
    await writeFile(nodeFile, 'node: gpu-test\nkind: cuda\ndevices: 1\nranks_per_gpu: 2\n');
    const server = await startServer({
      redisUrl: redis().url,
      grpcPort: 0,
      httpPort: null,
      runsDir: join(root, 'runs'),
      localAgent: { nodeFile, measureSgemm: false },
      log: () => {},
    });
    t.teardown(() => server.stop());
    const submitted = await submitSpec(
      server,
      `
name: gpu-gang
model: { preset: small }
data: { path: ${packed.indexPath} }
seq_len: 1024
devices: 2
precision: bf16
steps: 4
checkpoint: { every: 2, keep: 1 }
max_restarts: 0
`,
    );
    t.true(submitted.accepted, JSON.stringify(submitted.errors));
    const id = submitted.jobId!;
    const job = await waitForEnd(server, id, 150_000);
    const logs = runFolder(join(root, 'runs'), id).logsDir;
    const rankLogs = await Promise.all([0, 1].map((r) => readFile(join(logs, rankLogFileName(r)), 'utf8')));
    t.is(job?.state, 'SUCCEEDED', rankLogs.join('\n').slice(-2000));
    for (const [rank, text] of rankLogs.entries()) {
      t.regex(text, / on gpu-test device 0: /, `rank ${rank} ran on GPU 0`);
      t.regex(text, /device collectives: ranks share a GPU: using gloo host staging/, `rank ${rank}`);
    }
  },
);
