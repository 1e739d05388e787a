// Command-line options of the CLI's commands: the same parser as `longctx data` (`--name value`,
// `--name=value`, boolean `--name`, `-h`), typed accessors that name the option in their errors,
// and the options every command that talks to the server shares.
import { isAbsolute, resolve } from 'node:path';

import { parseArgs, UsageError, type FlagKind } from '../../core/args.js';
import { repoRoot } from '../../core/repo-root.js';

export { UsageError, type FlagKind };

export const DEFAULT_GRPC_PORT = 7170;
export const DEFAULT_HTTP_PORT = 7171;
export const DEFAULT_SERVER = `127.0.0.1:${DEFAULT_GRPC_PORT}`;

/** Options of every command that talks to the server. */
export const CONNECTION_FLAGS: Record<string, FlagKind> = { server: 'string', token: 'string' };

export const CONNECTION_HELP = `  --server HOST:PORT       the orchestrator's gRPC address (default $LONGCTX_SERVER or ${DEFAULT_SERVER})
  --token TOKEN            admin token of a server listening beyond loopback (default $LONGCTX_TOKEN)`;

export class Args {
  private constructor(
    readonly command: string,
    private readonly flags: Map<string, string | true>,
    readonly positionals: string[],
  ) {}

  static parse(argv: readonly string[], spec: Record<string, FlagKind>, command: string): Args {
    const parsed = parseArgs(argv, { ...spec, help: 'boolean' }, command);
    return new Args(command, parsed.flags, parsed.positionals);
  }

  has(name: string): boolean {
    return this.flags.has(name);
  }

  get help(): boolean {
    return this.flags.has('help');
  }

  get json(): boolean {
    return this.flags.has('json');
  }

  string(name: string): string | undefined {
    const v = this.flags.get(name);
    return v === true ? undefined : v;
  }

  integer(name: string, min: number): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isSafeInteger(n) || n < min)
      throw new UsageError(`--${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  }

  number(name: string, min: number): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min)
      throw new UsageError(`--${name} must be a number >= ${min}, got '${v}'`);
    return n;
  }

  /** Exactly `names.length` positionals, named in the error when some are missing or extra. */
  expect(...names: string[]): string[] {
    if (this.positionals.length < names.length)
      throw new UsageError(`'${this.command}' needs ${names.map((n) => n.toUpperCase()).join(' ')}`);
    if (this.positionals.length > names.length)
      throw new UsageError(
        `'${this.command}' takes ${names.length === 0 ? 'no arguments' : names.map((n) => n.toUpperCase()).join(' ')}, got an extra '${this.positionals[names.length]}'`,
      );
    return this.positionals;
  }

  /** The server address: --server, $LONGCTX_SERVER, or the default port on loopback. */
  server(env: NodeJS.ProcessEnv): string {
    return this.string('server') ?? (env.LONGCTX_SERVER || DEFAULT_SERVER);
  }

  token(env: NodeJS.ProcessEnv): string | undefined {
    return this.string('token') ?? (env.LONGCTX_TOKEN || undefined);
  }

  /** Where runs/<job> folders are: --runs, $LONGCTX_RUNS, or the repository's runs/ (the agent's default). */
  runsDir(env: NodeJS.ProcessEnv, cwd: string): string {
    const given = this.string('runs') ?? (env.LONGCTX_RUNS || undefined);
    if (given === undefined) return resolve(repoRoot, 'runs');
    return isAbsolute(given) ? given : resolve(cwd, given);
  }
}
