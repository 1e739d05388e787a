// The gRPC services every gRPC server is expected to offer beside its own, so that tools the
// project did not write work against it: grpc.health.v1.Health (health probes, load balancers,
// grpc-health-probe) and server reflection, v1 and v1alpha (grpcurl, Postman, evans). Both are
// the grpc-node project's own implementations; the reflection describes proto/longctx.proto (read
// from its source, so field names are the proto's own) and the health service itself.
import type { Server } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';

import { protoFile } from '../../proto/services.js';

/** The services the health check names; '' is the whole server, by the protocol's convention. */
export const HEALTH_SERVICES = ['', 'longctx.Control', 'longctx.Telemetry'] as const;

export interface StandardServices {
  health: HealthImplementation;
  /** Marks every service NOT_SERVING (a server that is shutting down says so before it goes). */
  stopServing(): void;
}

/** Adds Health (every longctx service SERVING) and reflection to `server`. */
export function addStandardServices(server: Server): StandardServices {
  const health = new HealthImplementation(
    Object.fromEntries(HEALTH_SERVICES.map((name) => [name, 'SERVING' as const])),
  );
  health.addToServer(server);
  // keepCase: the proto's own field names (snake_case), as grpcurl prints and accepts them.
  const definition = loadSync([protoFile, healthProtoPath], { keepCase: true });
  new ReflectionService(definition).addToServer(server);
  return {
    health,
    stopServing() {
      for (const name of HEALTH_SERVICES) health.setStatus(name, 'NOT_SERVING');
    },
  };
}
