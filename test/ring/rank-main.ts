// One rank of a ring-attention test: `node rank-main.js '<json RankJob>'`. Rendezvous, run one
// forward and backward of ring attention over this rank's shard of a generated sequence, and
// report the local outputs as a JSON line on stdout.
import '../../worker-native/comm.js';
import { exitWithParent, finish, report } from '../../worker-native/host/rank-processes.js';
import { native } from '../../worker-native/native.js';
import { attentionInputs, gatherRows, type RingCase } from './attention-data.js';
import { shardPositions, type Sharding } from '../../worker-native/ring.js';

export interface RankJob {
  rank: number;
  world: number;
  redisPort: number;
  prefix: string;
  sharding: Sharding;
  data: RingCase;
  timeoutMs: number;
  /** Exit right after the rendezvous, mid-ring for the others (the failure test). */
  die?: boolean;
}

async function main(): Promise<void> {
  exitWithParent();
  const job = JSON.parse(process.argv[2] ?? '{}') as RankJob;
  native().setBlasThreads(1);
  const { data } = job;
  const positions = shardPositions(data.seqLen, job.world, job.rank, job.sharding);
  const inputs = attentionInputs(data);
  const comm =
    job.world > 1
      ? await native().createCommunicator({
          rank: job.rank,
          size: job.world,
          redisPort: job.redisPort,
          prefix: job.prefix,
          timeoutMs: job.timeoutMs,
        })
      : null;
  if (job.die) process.exit(3);
  const qWidth = data.heads * data.headDim;
  const kvWidth = data.kvHeads * data.headDim;
  const result = await native().ringAttention(
    comm,
    { heads: data.heads, kvHeads: data.kvHeads, headDim: data.headDim, sharding: job.sharding },
    positions.length,
    gatherRows(inputs.q, qWidth, positions),
    gatherRows(inputs.k, kvWidth, positions),
    gatherRows(inputs.v, kvWidth, positions),
    gatherRows(inputs.dout, qWidth, positions),
  );
  await comm?.close();
  report({
    done: true,
    ok: true,
    rank: job.rank,
    o: Array.from(result.o),
    lse: Array.from(result.lse),
    dq: Array.from(result.dq),
    dk: Array.from(result.dk),
    dv: Array.from(result.dv),
    forward: result.forward,
    backward: result.backward,
  });
  finish(0);
}

main().catch((err: unknown) => {
  report({ done: true, ok: false, error: err instanceof Error ? err.message : String(err) });
  finish(1);
});
