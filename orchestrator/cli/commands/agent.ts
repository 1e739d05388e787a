// `longctx agent`: a node agent for this machine, serving an orchestrator that runs elsewhere (a
// `longctx server --no-agent`, or one with its own agent on another node). It registers the node's
// devices in the orchestrator's Redis and runs the gangs placed on it; its ranks report to the
// server's Telemetry service. Runs until Ctrl-C, SIGTERM or SIGHUP, then stops its gangs.
import { connectRedis } from '../../../control/job-queue.js';
import { NodeAgent } from '../../../cluster/agent.js';
import { detectInventory, loadNodeFile, nativeSgemmRate } from '../../../cluster/inventory.js';
import { UsageError, type Args } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { CliError, ExitCode, EXIT_CODES_HELP } from '../exit-codes.js';

const HELP = `Usage: longctx agent --redis URL [--server HOST:PORT] [--node-file FILE] [--runs DIR]

Runs a node agent for this machine's devices (its GPUs, or emulated CPU devices as the node file
says) for an orchestrator running elsewhere: the agent registers the node in the orchestrator's
Redis, takes the gangs placed on it, and tells its ranks to report to the server. The runs folder
must be the one the server uses, shared between the machines (e.g. over NFS), so a job can resume
on any node. Stops on Ctrl-C, SIGTERM or SIGHUP, ending its gangs first.

Options:
  --redis URL              the orchestrator's Redis (default $LONGCTX_REDIS_URL); required
  --server HOST:PORT       the orchestrator's gRPC address, for the ranks' telemetry
                           (default $LONGCTX_SERVER or 127.0.0.1:7170)
  --node-file FILE         this node's name, device kind and count, device memory, and
                           'address': where the other nodes reach its ranks (needed for a
                           job bigger than any one node; default 127.0.0.1)
  --runs DIR               the shared runs folder (default $LONGCTX_RUNS or the repository's runs/)
  -h, --help               show this help

${EXIT_CODES_HELP}`;

async function run(args: Args, io: CliIo): Promise<number> {
  args.expect();
  const redisUrl = args.string('redis') ?? (io.env.LONGCTX_REDIS_URL || undefined);
  if (!redisUrl)
    throw new UsageError('--redis URL: the orchestrator’s Redis is required (or $LONGCTX_REDIS_URL)');
  const nodeFile = args.string('node-file');
  const inventory = await detectInventory({
    nodeFile: nodeFile ? loadNodeFile(nodeFile) : {},
    nodeFilePath: nodeFile,
    measureSgemm: nativeSgemmRate(),
  });
  const redis = connectRedis(redisUrl);
  const agent = new NodeAgent({
    redis,
    redisUrl,
    inventory,
    telemetryAddress: args.server(io.env),
    runsDir: args.runsDir(io.env, io.cwd),
    log: (line) => io.stdout.write(`agent ${inventory.node}: ${line}\n`),
  });
  try {
    await agent.start();
  } catch (err) {
    redis.disconnect();
    throw new CliError(ExitCode.FAILURE, `the agent did not start: ${(err as Error).message}`);
  }
  io.stdout.write(
    `ready: node ${inventory.node}, ${inventory.devices.length} ${inventory.kind} devices; Ctrl-C stops the agent\n`,
  );
  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await agent.stop('stopped on request');
  redis.disconnect();
  return ExitCode.OK;
}

export const agentCommand: Command = {
  name: 'agent',
  summary: 'run a node agent for an orchestrator elsewhere',
  help: HELP,
  flags: { redis: 'string', server: 'string', 'node-file': 'string', runs: 'string' },
  run,
};
