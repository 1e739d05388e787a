// The node side of the control benchmark (bench/control.ts): `node control-agent.js '<json>'`.
// It stands in for a node agent whose jobs finish the moment they start: on every job placed on
// its node whose name is in `finish`, it reads the record and ends the attempt as SUCCEEDED
// through the same call an agent makes (recovery.ts finishAttempt), which frees the devices for
// the next placement. No processes are launched. Runs in its own process, as an agent would, so
// its work does not share the scheduler's event loop.
import { connectRedis } from '../../control/job-queue.js';
import { watchJobEvents } from '../../control/events.js';
import { PendingQueue } from '../../control/pending.js';
import { ControlStore } from '../../control/store.js';
import { finishAttempt } from '../../control/recovery.js';
import { exitWithParent, report } from '../../worker-native/host/rank-processes.js';

export interface ControlAgentJob {
  redisUrl: string;
  prefix: string;
  /** Job names (spec `name`) whose attempts this process ends as soon as they are placed. */
  finish: string[];
}

async function main(): Promise<void> {
  exitWithParent();
  const job = JSON.parse(process.argv[2] ?? '{}') as ControlAgentJob;
  const redis = connectRedis(job.redisUrl);
  const store = new ControlStore(redis, job.prefix);
  const pending = new PendingQueue(redis, store.keys.prefix);
  let ended = 0;
  const endAttempt = async (jobId: string) => {
    const record = await store.getJob(jobId);
    if (!record || !job.finish.includes(record.name)) return;
    const applied = await finishAttempt(store, pending, record, { kind: 'succeeded' });
    if (applied !== 'SUCCEEDED') throw new Error(`could not end ${jobId}: ${applied ?? 'already ended'}`);
    ended++;
  };
  await watchJobEvents(redis, store.keys, (event) => {
    if (event.state !== 'PLACED') return;
    endAttempt(event.jobId).catch((err: unknown) =>
      report({ error: err instanceof Error ? err.message : String(err) }),
    );
  });
  report({ ready: true });
  // Runs until the benchmark closes our stdin (exitWithParent); says how many it ended now and then.
  setInterval(() => report({ ended }), 1000);
}

main().catch((err: unknown) => {
  report({ error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
