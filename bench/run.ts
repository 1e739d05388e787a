// `npm run bench -- NAME [--json]`: runs bench/NAME.ts (or every benchmark for `all`).
// Each benchmark emits records {bench, metric, value, unit}; with --json one JSON object per
// line, otherwise an aligned table.
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchRecord {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  [extra: string]: string | number | boolean;
}

export type Emit = (record: BenchRecord) => void;

/** What every bench/NAME.ts exports. */
export interface Benchmark {
  run(emit: Emit, args: string[]): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));

function available(): string[] {
  return readdirSync(here)
    .filter((f) => f.endsWith('.js') && f !== 'run.js' && !f.startsWith('_'))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const rest = args.filter((a) => a !== '--json');
  const name = rest.shift();
  const names = available();
  if (!name || name === '--help' || name === '-h') {
    console.error(`usage: npm run bench -- NAME [--json]   (NAME: all | ${names.join(' | ')})`);
    return name ? 0 : 2;
  }
  const selected = name === 'all' ? names : [name];
  for (const n of selected) {
    if (!names.includes(n)) {
      console.error(`unknown benchmark '${n}' (available: ${names.join(', ')})`);
      return 2;
    }
  }
  const emit: Emit = (record) => {
    if (json) console.log(JSON.stringify(record));
    else
      console.log(
        `${record.bench.padEnd(12)} ${record.metric.padEnd(32)} ${String(record.value).padStart(14)} ${record.unit}`,
      );
  };
  for (const n of selected) {
    const mod = (await import(`./${n}.js`)) as Benchmark;
    await mod.run(emit, rest);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
