// A failure no restart can fix, end to end: a packed token file holding an id past its
// tokenizer's vocabulary (its index and sha256 agree with it, so submit accepts it) fails its
// first attempt, and the job ends FAILED at once with the reason — no restarts, no backoff.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pack } from '../../data/pack.js';
import { synth } from '../../data/synth.js';
import { checkDataFile } from '../../data/validate.js';
import { startServer } from '../../orchestrator/server.js';
import { useRedis } from '../helpers/redis.js';
import { submitSpec, waitForEnd } from '../helpers/submit.js';

const redis = useRedis(test);

test('token ids past the vocabulary: FAILED on the first attempt with the reason, not retried', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'longctx-permanent-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await synth(join(root, 'corpus.jsonl'), { docs: 60, seed: 3 });
  const packed = await pack({ inputs: [join(root, 'corpus.jsonl')], out: join(root, 'corpus.bin'), seed: 3 });
  // Token 100 (in the first sequence every step reads) becomes an id the tokenizer never makes;
  // the index's sha256 is brought in line, as a tool that wrote ids with the wrong tokenizer would.
  const tokens = await readFile(packed.tokenPath);
  tokens.writeUInt32LE(70_000, 100 * 4);
  await writeFile(packed.tokenPath, tokens);
  const index = JSON.parse(await readFile(packed.indexPath, 'utf8')) as { sha256: string };
  index.sha256 = createHash('sha256').update(tokens).digest('hex');
  await writeFile(packed.indexPath, JSON.stringify(index));
  const verified = await checkDataFile(packed.indexPath, { seqLen: 128, verifyChecksum: true });
  t.false(verified.ok, '`data check --verify` reads every id and refuses it');

  const server = await startServer({
    redisUrl: redis().url,
    grpcPort: 0,
    httpPort: null,
    runsDir: join(root, 'runs'),
    localAgent: { devices: 2, deviceMemoryBytes: 256 * 2 ** 20, measureSgemm: false },
    backoff: { baseMs: 200, maxMs: 1000 },
    log: () => {},
  });
  t.teardown(() => server.stop());
  const submitted = await submitSpec(
    server,
    `
name: bad-ids
model: { preset: tiny }
data: { path: ${packed.indexPath} }
seq_len: 128
devices: 2
steps: 4
max_restarts: 3
`,
  );
  t.true(submitted.accepted, JSON.stringify(submitted.errors));
  const id = submitted.jobId!;
  const job = await waitForEnd(server, id, 120_000);
  t.is(job?.state, 'FAILED');
  t.is(job?.attempt, 1, 'one attempt only');
  t.is(job?.restarts, 0);
  t.regex(job?.message ?? '', /is id 70000, not below the vocab size \d+/);
  t.regex(job?.message ?? '', /not restarted: bad data fails every attempt the same way/);
  const states = (await server.queue.history(id)).map((e) => e.state);
  t.false(states.includes('RECOVERING'), states.join(' → '));
});
