// Every message of proto/longctx.proto, filled in field by field through reflection, survives
// encode → decode through the generated classes.
import test from 'ava';
import { readFileSync } from 'node:fs';

import { longctx } from '../../proto/gen/longctx.js';
import { controlService, telemetryService } from '../../proto/services.js';
import { repoRoot } from '../../core/repo-root.js';

interface FieldSpec {
  type: string;
  id: number;
  rule?: 'repeated';
}
interface TypeSpec {
  fields?: Record<string, FieldSpec>;
  oneofs?: Record<string, { oneof: string[] }>;
  values?: Record<string, number>;
  methods?: unknown;
  nested?: Record<string, TypeSpec>;
}

const root = JSON.parse(readFileSync(`${repoRoot}/proto/gen/longctx.json`, 'utf8')) as {
  nested: { longctx: { nested: Record<string, TypeSpec> } };
};
const types = root.nested.longctx.nested;

function lookup(name: string, scope?: TypeSpec): TypeSpec | undefined {
  return scope?.nested?.[name] ?? types[name];
}

type Value = string | number | boolean | Uint8Array | Value[] | { [k: string]: Value };

function sample(field: FieldSpec, seed: number, scope: TypeSpec, depth: number): Value | undefined {
  switch (field.type) {
    case 'string':
      return `s${seed}`;
    case 'bool':
      return true;
    case 'double':
      return seed + 0.25;
    case 'float':
      return seed + 0.5;
    case 'int32':
    case 'int64':
    case 'sint64':
      return -seed - 1;
    case 'uint32':
    case 'uint64':
      return seed + 1;
    case 'bytes':
      return new Uint8Array([seed & 255, 7]);
  }
  const type = lookup(field.type, scope);
  if (!type) throw new Error(`unknown type ${field.type}`);
  if (type.values) return Math.max(...Object.values(type.values)); // an enum: its last value
  if (depth > 2) return undefined;
  return fill(type, seed, depth + 1);
}

function fill(type: TypeSpec, seed: number, depth = 0): { [k: string]: Value } {
  const out: { [k: string]: Value } = {};
  const oneofMembers = new Set(Object.values(type.oneofs ?? {}).flatMap((o) => o.oneof.slice(1)));
  for (const [name, field] of Object.entries(type.fields ?? {})) {
    if (oneofMembers.has(name)) continue; // one member per oneof is set
    const value = sample(field, seed + field.id, type, depth);
    if (value === undefined) continue;
    out[name] = field.rule === 'repeated' ? [value, value] : value;
  }
  return out;
}

interface Codec {
  create(o: object): object;
  encode(m: object): { finish(): Uint8Array };
  decode(b: Uint8Array): object;
  toObject(m: object, o: object): object;
}

const messages = Object.entries(types).filter(([, spec]) => spec.fields !== undefined);

test('the contract has the Control and Telemetry services and their messages', (t) => {
  t.deepEqual(Object.keys(controlService).sort(), [
    'cancelJob',
    'getJob',
    'listJobs',
    'planJob',
    'resumeJob',
    'submitJob',
    'watchJob',
  ]);
  t.true(controlService.watchJob?.responseStream);
  t.true(telemetryService.stream?.requestStream);
  t.true(messages.length >= 20, `only ${messages.length} messages`);
});

for (const [name, spec] of messages) {
  test(`round-trip: ${name}`, (t) => {
    const codec = (longctx as unknown as Record<string, Codec>)[name];
    t.truthy(codec, `no generated class for ${name}`);
    const original = fill(spec, 3);
    const bytes = codec!.encode(codec!.create(original)).finish();
    t.true(bytes.length > 0);
    const decoded = codec!.toObject(codec!.decode(bytes), { defaults: false, arrays: true, longs: Number });
    t.deepEqual(JSON.parse(JSON.stringify(decoded)), JSON.parse(JSON.stringify(original)));
  });
}

test('service codecs serialise what the generated classes decode', (t) => {
  const method = telemetryService.stream!;
  const message = { registration: { jobId: 'job-1', attempt: 2, rank: 3, worldSize: 4, token: 'secret' } };
  const bytes = method.requestSerialize(message);
  const back = method.requestDeserialize(bytes) as longctx.TelemetryMessage;
  t.is(back.registration?.jobId, 'job-1');
  t.is(back.registration?.rank, 3);
  t.is(back.body, 'registration');
});
