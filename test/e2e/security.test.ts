// Who may talk to the orchestrator: Control calls need the admin token when one is configured
// (it must be, to listen beyond loopback), and gRPC/HTTP listen on loopback unless told otherwise.
import { credentials, makeGenericClientConstructor, Metadata, status } from '@grpc/grpc-js';
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startServer } from '../../orchestrator/server.js';
import { controlService, type longctx } from '../../proto/services.js';
import { useRedis } from '../helpers/redis.js';

const redis = useRedis(test);
const ControlClient = makeGenericClientConstructor(controlService, 'Control');

test('listening beyond loopback without an admin token is refused at start', async (t) => {
  await t.throwsAsync(
    startServer({
      redisUrl: redis().url,
      host: '0.0.0.0',
      grpcPort: 0,
      httpPort: null,
      localAgent: false,
      log: () => {},
    }),
    {
      message: /beyond loopback\) needs an admin token/,
    },
  );
});

test('by default the server listens on 127.0.0.1', async (t) => {
  const server = await startServer({
    redisUrl: redis().url,
    grpcPort: 0,
    httpPort: 0,
    localAgent: false,
    log: () => {},
  });
  t.teardown(() => server.stop());
  t.regex(server.grpcAddress, /^127\.0\.0\.1:\d+$/);
  t.regex(server.httpUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
});

test('with an admin token, Control calls without it are UNAUTHENTICATED; with it they work', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'longctx-sec-'));
  const server = await startServer({
    redisUrl: redis().url,
    grpcPort: 0,
    httpPort: null,
    localAgent: false,
    adminToken: 's3cret',
    runsDir,
    log: () => {},
  });
  const client = new ControlClient(server.grpcAddress, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await server.stop();
    await rm(runsDir, { recursive: true, force: true });
  });
  const list = (metadata: Metadata) =>
    new Promise<longctx.IListJobsResponse>((resolve, reject) =>
      (
        client as unknown as {
          listJobs(r: object, m: Metadata, cb: (e: Error | null, r: longctx.IListJobsResponse) => void): void;
        }
      ).listJobs({}, metadata, (e, r) => (e ? reject(e) : resolve(r))),
    );
  type GrpcError = Error & { code?: number };
  const denied = await t.throwsAsync<GrpcError>(list(new Metadata()));
  t.is(denied?.code, status.UNAUTHENTICATED);
  const wrong = new Metadata();
  wrong.set('authorization', 'Bearer guess');
  t.is((await t.throwsAsync<GrpcError>(list(wrong)))?.code, status.UNAUTHENTICATED);
  const right = new Metadata();
  right.set('authorization', 'Bearer s3cret');
  t.deepEqual((await list(right)).jobs, []);
});
