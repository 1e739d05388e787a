// The node agent as a process:
//   node dist/cluster/agent-main.js --redis redis://host:6379 [--node-file node.yaml]
//     [--telemetry host:port] [--runs dir] [--prefix longctx] [--lease-ms N] [--lock-ms N]
//     [--stalled-ms N] [--grace-ms N] [--backoff-ms N] [--measure-sgemm] [--no-gpu]
//     [-- worker command and arguments]
// SIGTERM, SIGINT or SIGHUP stops its gangs (no rank is left behind) and exits.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { connectRedis } from '../control/job-queue.js';
import { addonPath } from '../worker-native/native.js';
import { NodeAgent } from './agent.js';
import { detectInventory, loadNodeFile, nativeSgemmRate, NodeFileError } from './inventory.js';

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: must be a positive number, got '${value}'`);
  return n;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      redis: { type: 'string', default: process.env.LONGCTX_REDIS_URL },
      prefix: { type: 'string' },
      'node-file': { type: 'string' },
      telemetry: { type: 'string', default: process.env.LONGCTX_TELEMETRY_ADDRESS ?? '127.0.0.1:50051' },
      runs: { type: 'string' },
      'lease-ms': { type: 'string' },
      'lock-ms': { type: 'string' },
      'stalled-ms': { type: 'string' },
      'grace-ms': { type: 'string' },
      'backoff-ms': { type: 'string' },
      'measure-sgemm': { type: 'boolean', default: false },
      'no-gpu': { type: 'boolean', default: false },
    },
  });
  if (!values.redis) throw new Error('--redis: required (or set LONGCTX_REDIS_URL)');
  const nodeFile = values['node-file'] ? loadNodeFile(values['node-file']) : undefined;
  const measure = values['measure-sgemm'];
  if (measure && !existsSync(addonPath))
    throw new Error(`--measure-sgemm: the native addon is not built (${addonPath})`);
  const inventory = await detectInventory({
    nodeFile,
    nodeFilePath: values['node-file'],
    nvidiaSmi: values['no-gpu'] ? false : undefined,
    measureSgemm: measure ? nativeSgemmRate() : undefined,
  });
  const backoffMs = positive('backoff-ms', values['backoff-ms']);
  const redis = connectRedis(values.redis);
  const agent = new NodeAgent({
    redis,
    redisUrl: values.redis,
    prefix: values.prefix,
    inventory,
    telemetryAddress: values.telemetry,
    workerCommand: positionals.length > 0 ? positionals : undefined,
    runsDir: values.runs,
    leaseMs: positive('lease-ms', values['lease-ms']),
    lockDurationMs: positive('lock-ms', values['lock-ms']),
    stalledIntervalMs: positive('stalled-ms', values['stalled-ms']),
    graceMs: positive('grace-ms', values['grace-ms']),
    backoff: backoffMs ? { baseMs: backoffMs, maxMs: 64 * backoffMs } : undefined,
  });
  agent.installSignalHandlers();
  await agent.start();
}

main().catch((err: unknown) => {
  console.error(
    err instanceof NodeFileError ? err.message : `agent: ${(err as Error).message ?? String(err)}`,
  );
  process.exit(1);
});
