// One rank of a multi-rank trainer test: `node rank-main.js '<json TrainerRankJob>'`. Rendezvous,
// create the trainer, run the job on this rank's zigzag shard of generated sequences, and report
// the results as one JSON line on stdout.
import '../../worker-native/comm.js';
import { exitWithParent, finish, report } from '../../worker-native/host/rank-processes.js';
import { native } from '../../worker-native/native.js';
import { createTrainer } from '../../worker-native/trainer.js';
import { runTrainerJob, type TrainerRankJob } from './job.js';

async function main(): Promise<void> {
  exitWithParent();
  const job = JSON.parse(process.argv[2] ?? '{}') as TrainerRankJob;
  native().setBlasThreads(1);
  const comm = await native().createCommunicator({
    rank: job.rank,
    size: job.world,
    redisPort: job.redisPort,
    prefix: job.prefix,
    timeoutMs: job.timeoutMs,
  });
  const options = job.gpuPerRank ? { ...job.options, device: `cuda:${job.rank}` } : job.options;
  const trainer = await createTrainer(comm, options);
  const out = await runTrainerJob(trainer, job);
  const collectives = trainer.collectives;
  trainer.close();
  await comm.close();
  report({ ...out, collectives });
  finish(0);
}

main().catch((err: unknown) => {
  report({ done: true, ok: false, error: err instanceof Error ? err.message : String(err) });
  finish(1);
});
