// What clients the project did not write expect of any gRPC server: grpc.health.v1.Health (probes,
// load balancers) and server reflection (grpcurl). Both are read here through their own protos,
// as such a client would, against a real `longctx server`.
import {
  credentials,
  loadPackageDefinition,
  status,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import test from 'ava';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import descriptorExt from 'protobufjs/ext/descriptor/index.js';

import { startServer, type RunningServer } from '../../orchestrator/server.js';
import { useRedis } from '../helpers/redis.js';

const redis = useRedis(test, {
  stopFirst: async () => {
    await (await started)?.stop();
  },
});
const require = createRequire(import.meta.url);

type Callback<T> = (err: ServiceError | null, value: T) => void;
interface HealthClient {
  check(request: { service: string }, callback: Callback<{ status: string }>): void;
  watch(request: { service: string }): ClientReadableStream<{ status: string }>;
  close(): void;
}
interface ReflectionStream {
  write(request: object): void;
  end(): void;
  on(event: 'data', listener: (response: Record<string, unknown>) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
}
interface ReflectionClient {
  serverReflectionInfo(): ReflectionStream;
  close(): void;
}

function healthClient(address: string): HealthClient {
  const { protoPath } = require('grpc-health-check') as { protoPath: string };
  const loaded = loadPackageDefinition(loadSync(protoPath, { enums: String })) as unknown as {
    grpc: {
      health: {
        v1: { Health: new (a: string, c: ReturnType<typeof credentials.createInsecure>) => HealthClient };
      };
    };
  };
  return new loaded.grpc.health.v1.Health(address, credentials.createInsecure());
}

function reflectionClient(address: string, version: 'v1' | 'v1alpha'): ReflectionClient {
  const root = join(require.resolve('@grpc/reflection'), '..', '..', 'proto');
  const definition = loadSync(join(root, 'grpc', 'reflection', version, 'reflection.proto'), {
    includeDirs: [root],
    keepCase: true,
  });
  const pkg = (
    loadPackageDefinition(definition) as unknown as {
      grpc: {
        reflection: Record<
          string,
          {
            ServerReflection: new (
              a: string,
              c: ReturnType<typeof credentials.createInsecure>,
            ) => ReflectionClient;
          }
        >;
      };
    }
  ).grpc.reflection[version]!;
  return new pkg.ServerReflection(address, credentials.createInsecure());
}

/** One request on the bidirectional reflection stream, its one answer. */
function reflect(client: ReflectionClient, request: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const call = client.serverReflectionInfo();
    call.on('data', (response) => {
      resolve(response);
      call.end();
    });
    call.on('error', reject);
    call.write(request);
  });
}

// Started by the first test that needs it (Redis starts in a before hook of its own).
let started: Promise<RunningServer> | undefined;
const address = async () =>
  (
    await (started ??= startServer({
      redisUrl: redis().url,
      grpcPort: 0,
      httpPort: null,
      localAgent: false,
      // An admin token guards Control; health and reflection answer without it, as probes need.
      adminToken: 'interop-token',
      log: () => {},
    }))
  ).grpcAddress;

test('grpc.health.v1.Health answers SERVING for the server and for each longctx service', async (t) => {
  const client = healthClient(await address());
  t.teardown(() => client.close());
  for (const service of ['', 'longctx.Control', 'longctx.Telemetry']) {
    const answer = await new Promise<{ status: string }>((resolve, reject) =>
      client.check({ service }, (err, value) => (err ? reject(err) : resolve(value))),
    );
    t.is(answer.status, 'SERVING', `service '${service}'`);
  }
  const unknown = await new Promise<ServiceError | null>((resolve) =>
    client.check({ service: 'nobody.Nothing' }, (err) => resolve(err)),
  );
  t.is(unknown?.code, status.NOT_FOUND, 'an unknown service is NOT_FOUND, as the protocol says');
  // Watch streams the current status first.
  const first = await new Promise<{ status: string }>((resolve, reject) => {
    const call = client.watch({ service: '' });
    call.on('data', (value: { status: string }) => {
      resolve(value);
      call.cancel();
    });
    call.on('error', (err: ServiceError) => {
      if (err.code !== status.CANCELLED) reject(err); // our own cancel
    });
  });
  t.is(first.status, 'SERVING');
});

for (const version of ['v1', 'v1alpha'] as const) {
  test(`server reflection (${version}) lists the services and describes Control from the proto`, async (t) => {
    const client = reflectionClient(await address(), version);
    t.teardown(() => client.close());
    const listed = await reflect(client, { list_services: '*' });
    const names = (listed.list_services_response as { service: { name: string }[] } | undefined)?.service.map(
      (s) => s.name,
    );
    t.truthy(names, JSON.stringify(listed));
    for (const name of ['longctx.Control', 'longctx.Telemetry', 'grpc.health.v1.Health'])
      t.true(names!.includes(name), `${name} in ${names!.join(', ')}`);

    const described = await reflect(client, { file_containing_symbol: 'longctx.Control' });
    const files = (described.file_descriptor_response as { file_descriptor_proto: Buffer[] } | undefined)
      ?.file_descriptor_proto;
    t.truthy(files?.length, JSON.stringify(described));
    const FileDescriptorProto = (descriptorExt as unknown as { FileDescriptorProto: protobuf.Type })
      .FileDescriptorProto;
    const protos = files!.map(
      (bytes) =>
        FileDescriptorProto.toObject(FileDescriptorProto.decode(bytes)) as {
          package?: string;
          service?: { name: string; method: { name: string; inputType: string; outputType: string }[] }[];
          messageType?: { name: string; field?: { name: string }[] }[];
        },
    );
    const control = protos.flatMap((p) => p.service ?? []).find((s) => s.name === 'Control');
    t.truthy(control, 'the file declares service Control');
    const submit = control!.method.find((m) => m.name === 'SubmitJob');
    t.like(submit, { inputType: '.longctx.SubmitJobRequest', outputType: '.longctx.SubmitJobResponse' });
    // Field names as the proto spells them (grpcurl prints and accepts these).
    const request = protos.flatMap((p) => p.messageType ?? []).find((m) => m.name === 'SubmitJobRequest');
    t.deepEqual(
      request?.field?.map((f) => f.name),
      ['spec_yaml', 'spec_path'],
    );
  });
}
