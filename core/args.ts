// Command-line flags as every longctx program reads them (the CLI, `longctx data`): one parser, so
// `--name value`, `--name=value` and the error messages are the same everywhere.

export type FlagKind = 'string' | 'boolean';

export interface ParsedArgs {
  flags: Map<string, string | true>;
  positionals: string[];
}

/** A command line that cannot be used: an unknown option, a missing or repeated value. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** `--name value`, `--name=value`, boolean `--name`; anything else starting with '-' is an error. */
export function parseArgs(
  argv: readonly string[],
  spec: Record<string, FlagKind>,
  command: string,
): ParsedArgs {
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      flags.set('help', true);
      continue;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg} for '${command}'`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const kind = spec[name];
    if (kind === undefined) throw new UsageError(`unknown option --${name} for '${command}'`);
    if (kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`option --${name} takes no value`);
      flags.set(name, true);
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined || (eq === -1 && value.startsWith('--'))) {
      throw new UsageError(`option --${name} needs a value`);
    }
    if (flags.has(name)) throw new UsageError(`option --${name} is given twice`);
    flags.set(name, value);
  }
  return { flags, positionals };
}
