// What a CLI command is and what it runs with. Commands write through `io` and read the
// environment from `env`, so a test can run one in-process as well as through the real binary.
import type { Args, FlagKind } from './args.js';
import { ControlClient } from './control-client.js';

export interface CliIo {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM: long-running commands stop cleanly. */
  signal: AbortSignal;
}

export interface Command {
  name: string;
  /** One line for `longctx --help`. */
  summary: string;
  /** The command's own --help text. */
  help: string;
  flags: Record<string, FlagKind>;
  /** Short options, e.g. { '-f': '--follow' }. */
  aliases?: Record<string, string>;
  run(args: Args, io: CliIo): Promise<number>;
}

/** A client for the server the command line points at; closed when `use` settles. */
export async function withClient<T>(
  args: Args,
  io: CliIo,
  use: (client: ControlClient) => Promise<T>,
): Promise<T> {
  const client = new ControlClient(args.server(io.env), args.token(io.env));
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

export function writeJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
