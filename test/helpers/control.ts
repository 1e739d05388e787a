// Shared pieces of the control-plane tests: real job specs (through the real validator), a
// Redis prefix per test so tests sharing a server never see each other's keys, waiting for a
// condition, and the rank fixture's location.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

import type { NodeInventory } from '../../cluster/inventory.js';
import type { JobSpec } from '../../core/job-spec.js';
import { parseSpec } from '../../orchestrator/spec/validate.js';

let prefixCounter = 0;

/** A fresh key prefix: every test works in its own namespace of the shared test Redis. */
export function testPrefix(name: string): string {
  prefixCounter += 1;
  return `t${process.pid}-${prefixCounter}-${name.replace(/[^A-Za-z0-9]/g, '').slice(0, 20)}`;
}

export function specYaml(
  name: string,
  devices: number,
  extra: { priority?: number; maxRestarts?: number } = {},
): string {
  return [
    `name: ${name}`,
    'model: { preset: tiny }',
    'data: { path: /nonexistent/corpus.tokens }',
    `seq_len: ${2 * devices * 8}`,
    `devices: ${devices}`,
    'steps: 1',
    `priority: ${extra.priority ?? 0}`,
    `max_restarts: ${extra.maxRestarts ?? 3}`,
    '',
  ].join('\n');
}

/**
 * The job the end-to-end tests train for real: the tiny model on a packed corpus, 256 tokens, a
 * checkpoint every 4 steps (the newest two kept), so a fault mid-job has a checkpoint to resume from.
 */
export function trainingSpecYaml(o: {
  name: string;
  dataPath: string;
  devices: number;
  steps: number;
  maxRestarts?: number;
}): string {
  return [
    `name: ${o.name}`,
    'model: { preset: tiny }',
    `data: { path: ${o.dataPath} }`,
    'seq_len: 256',
    `devices: ${o.devices}`,
    `steps: ${o.steps}`,
    'optimizer: { lr: 3.0e-3 }',
    'checkpoint: { every: 4, keep: 2 }',
    `max_restarts: ${o.maxRestarts ?? 3}`,
    '',
  ].join('\n');
}

/** A validated spec and its YAML, as the submit path receives them. */
export function spec(
  name: string,
  devices: number,
  extra: { priority?: number; maxRestarts?: number } = {},
): { spec: JobSpec; specYaml: string } {
  const yaml = specYaml(name, devices, extra);
  const result = parseSpec(yaml);
  if (!result.ok) throw new Error(`test spec ${name} is invalid: ${JSON.stringify(result.errors)}`);
  return { spec: result.spec, specYaml: yaml };
}

export function cpuInventory(node: string, devices: number, budget = 1 << 30): NodeInventory {
  return {
    node,
    hostname: 'test-host',
    kind: 'cpu',
    devices: Array.from({ length: devices }, (_, index) => ({ index, name: 'cpu', memoryBytes: budget })),
    threadsPerDevice: 1,
  };
}

/** Polls `check` until it returns a value other than undefined/false, or fails naming `what`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function connect(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null });
}

export async function tempDir(label: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `longctx-${label}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled rank fixture (test/fixtures/rank.ts). */
export const RANK_FIXTURE = join(here, '..', 'fixtures', 'rank.js');
/** The compiled node agent entry point. */
export const AGENT_MAIN = join(here, '..', '..', 'cluster', 'agent-main.js');

/** Deletes every key under a test's prefix. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}
