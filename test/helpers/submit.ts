// A job through a running server as a client submits it: the Control service's SubmitJob, then the
// job's record polled until it ends.
import { credentials, makeGenericClientConstructor } from '@grpc/grpc-js';

import type { JobRecord } from '../../control/job-record.js';
import type { RunningServer } from '../../orchestrator/server.js';
import { controlService, type longctx } from '../../proto/services.js';

const ControlClient = makeGenericClientConstructor(controlService, 'Control');

export async function submitSpec(
  server: RunningServer,
  specYaml: string,
): Promise<longctx.ISubmitJobResponse> {
  const client = new ControlClient(server.grpcAddress, credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      (
        client as unknown as Record<
          string,
          (r: object, cb: (e: Error | null, r: longctx.ISubmitJobResponse) => void) => void
        >
      ).submitJob!({ specYaml }, (e, r) => (e ? reject(e) : resolve(r))),
    );
  } finally {
    client.close();
  }
}

/** The job's record once it is SUCCEEDED, FAILED or CANCELLED, or as it stands after timeoutMs. */
export async function waitForEnd(
  server: RunningServer,
  id: string,
  timeoutMs: number,
): Promise<JobRecord | undefined> {
  const deadline = Date.now() + timeoutMs;
  let job = await server.queue.get(id);
  while (job && !['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.state) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    job = await server.queue.get(id);
  }
  return job;
}
