// One rank of a multi-rank NIAH evaluation: `node niah-rank-main.js JOB.json` (eval/niah-run.ts
// starts them). Joins the gloo group on the Redis the parent started, loads the checkpoint, runs
// every case on its zigzag shard, and reports JSON lines: {case, result} per case (rank 0), then
// {done, results}.
import '../worker-native/comm.js';
import { readFile } from 'node:fs/promises';

import { exitWithParent, finish, report } from '../worker-native/host/rank-processes.js';
import { native } from '../worker-native/native.js';
import { decodeCases, evalTrainer, runCases, type NiahRankJob } from './niah-run.js';

async function main(): Promise<void> {
  exitWithParent();
  const job = JSON.parse(await readFile(process.argv[2] ?? '', 'utf8')) as NiahRankJob;
  // One core per rank: the ranks of a node share its cores.
  native().setBlasThreads(1);
  const cases = decodeCases(await readFile(job.casesFile, 'utf8'));
  const comm = await native().createCommunicator({
    rank: job.rank,
    size: job.world,
    redisPort: job.redisPort,
    prefix: job.prefix,
    timeoutMs: 120_000,
  });
  const trainer = await evalTrainer(comm, job, job.rank);
  const results = await runCases(trainer, cases, (result, index) => {
    if (job.rank === 0) report({ case: index, result });
  });
  trainer.close();
  await comm.close();
  report({ done: true, ok: true, results });
  finish(0);
}

main().catch((err: unknown) => {
  report({ done: true, ok: false, error: err instanceof Error ? err.message : String(err) });
  finish(1);
});
