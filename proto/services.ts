// gRPC service definitions for @grpc/grpc-js, built from the generated code: the method table
// comes from the proto's reflection JSON and the codecs from the generated static classes, so
// nothing here restates the contract by hand.
import type { ServiceDefinition, MethodDefinition } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { longctx } from './gen/longctx.js';

interface ReflectedMethod {
  requestType: string;
  responseType: string;
  requestStream?: boolean;
  responseStream?: boolean;
}

interface Codec {
  encode(message: object): { finish(): Uint8Array };
  decode(bytes: Uint8Array): object;
  fromObject(object: object): object;
  toObject(message: object, options: object): object;
}

// Decoded messages become plain objects with 64-bit integers as JavaScript numbers (step counts
// and byte sizes stay far below 2^53), defaults filled in, and each oneof's name set to the
// member present (e.g. TelemetryMessage.body === 'step').
const PLAIN = { longs: Number, enums: Number, defaults: true, oneofs: true, arrays: true };

const reflection = JSON.parse(
  readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'gen', 'longctx.json'), 'utf8'),
) as { nested: { longctx: { nested: Record<string, { methods?: Record<string, ReflectedMethod> }> } } };

function codecFor(typeName: string): Codec {
  const codec = (longctx as unknown as Record<string, Codec | undefined>)[typeName];
  if (!codec) throw new Error(`proto: no generated class for message ${typeName}`);
  return codec;
}

function serviceDefinition(service: 'Control' | 'Telemetry'): ServiceDefinition {
  const methods = reflection.nested.longctx.nested[service]?.methods;
  if (!methods) throw new Error(`proto: service ${service} not found`);
  const definition: Record<string, MethodDefinition<object, object>> = {};
  for (const [name, m] of Object.entries(methods)) {
    const request = codecFor(m.requestType);
    const response = codecFor(m.responseType);
    // grpc-js handler names are the proto names with a lower-case first letter.
    const key = name.charAt(0).toLowerCase() + name.slice(1);
    definition[key] = {
      path: `/longctx.${service}/${name}`,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
      requestSerialize: (value: object) => Buffer.from(request.encode(request.fromObject(value)).finish()),
      requestDeserialize: (bytes: Buffer) => request.toObject(request.decode(bytes), PLAIN),
      responseSerialize: (value: object) => Buffer.from(response.encode(response.fromObject(value)).finish()),
      responseDeserialize: (bytes: Buffer) => response.toObject(response.decode(bytes), PLAIN),
      originalName: key,
    };
  }
  return definition;
}

export const controlService = serviceDefinition('Control');
export const telemetryService = serviceDefinition('Telemetry');
/** The contract's source, copied beside this module by the build (gRPC server reflection reads it). */
export const protoFile = join(dirname(fileURLToPath(import.meta.url)), 'longctx.proto');
export { longctx };
