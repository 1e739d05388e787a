// `longctx data pack`'s question before it replaces a token file: which jobs on the server may
// still read it. Queued, placed, running and recovering jobs memory-map it (or will); cancelled
// and failed jobs that did not finish can be resumed, and their checkpoints' cursors count into
// exactly these tokens.
import { resolve } from 'node:path';

import type { DataUsers } from '../../data/commands.js';
import { dataPaths } from '../../data/index-file.js';
import { longctx } from '../../proto/services.js';
import { DEFAULT_SERVER } from './args.js';
import { ControlClient } from './control-client.js';
import { CliError, ExitCode } from './exit-codes.js';
import { jobStateName, num, str } from './format.js';

const ENDED_RESUMABLE = new Set([longctx.JobState.JOB_STATE_CANCELLED, longctx.JobState.JOB_STATE_FAILED]);

export function dataUsersOnServer(env: NodeJS.ProcessEnv): DataUsers {
  return {
    async jobsUsing(paths, connection) {
      const address = connection.server ?? (env.LONGCTX_SERVER || DEFAULT_SERVER);
      const client = new ControlClient(address, connection.token ?? (env.LONGCTX_TOKEN || undefined));
      let jobs: longctx.IJobSummary[];
      try {
        jobs = (await client.listJobs()).jobs;
      } catch (err) {
        if (err instanceof CliError && err.exitCode === ExitCode.UNREACHABLE)
          return {
            jobs: [],
            note: `no longctx server answered at ${address}, so no job can be running; jobs of another server were not checked (--server names it)`,
          };
        throw err;
      } finally {
        client.close();
      }
      const target = resolve(paths.indexPath);
      const reads = (dataPath: string) =>
        dataPath !== '' &&
        (resolve(dataPath) === resolve(paths.tokenPath) || resolve(dataPaths(dataPath).indexPath) === target);
      const users: string[] = [];
      for (const j of jobs) {
        if (!reads(str(j.dataPath)) || j.state === longctx.JobState.JOB_STATE_SUCCEEDED) continue;
        const state = jobStateName(j.state);
        if (!ENDED_RESUMABLE.has(j.state ?? 0)) users.push(`${str(j.id)} (${state})`);
        else if (num(j.step) < num(j.totalSteps))
          users.push(`${str(j.id)} (${state} at step ${num(j.step)} of ${num(j.totalSteps)}: resumable)`);
      }
      return { jobs: users };
    },
  };
}
