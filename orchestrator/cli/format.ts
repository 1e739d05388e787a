// How the CLI writes things: proto messages as plain JSON for --json (numbers as numbers, every
// field present, enum names without their prefix: RUNNING, checkpoint-saved), and for people:
// aligned tables, bytes in binary units, durations, percentages.
import { longctx } from '../../proto/services.js';

interface ProtoType<T> {
  fromObject(object: Record<string, unknown>): T;
  toObject(
    message: T,
    options: { longs: NumberConstructor; enums: StringConstructor; defaults: boolean },
  ): Record<string, unknown>;
}

/** `JOB_STATE_RUNNING` → `RUNNING`; a worker event's `KIND_CHECKPOINT_SAVED` → `checkpoint-saved`. */
function shortEnums(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => shortEnums(v, key));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shortEnums(v, k)]));
  }
  if (typeof value === 'string') {
    if (/State$/i.test(key) && value.startsWith('JOB_STATE_')) return value.slice('JOB_STATE_'.length);
    if (key === 'kind' && value.startsWith('KIND_'))
      return value.slice('KIND_'.length).toLowerCase().replace(/_/g, '-');
  }
  return value;
}

/** A message as the client received it (a plain object, see proto/services.ts) as --json prints it. */
export function protoJson<T>(type: ProtoType<T>, message: object): Record<string, unknown> {
  const typed = type.fromObject(message as Record<string, unknown>);
  return shortEnums(type.toObject(typed, { longs: Number, enums: String, defaults: true })) as Record<
    string,
    unknown
  >;
}

export function jobStateName(state: longctx.JobState | null | undefined): string {
  const name: string | undefined = longctx.JobState[state ?? 0];
  return name ? name.replace(/^JOB_STATE_/, '') : 'UNKNOWN';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(2)} ${UNITS[unit]}`;
}

/** 0.042 → "42ms", 75 → "1m15s", 90061 → "1d1h1m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const s = Math.round(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (d > 0) return `${d}d${h}h${m}m`;
  if (h > 0) return `${h}h${m}m`;
  return `${m}m${rest}s`;
}

export function formatPercent(ratio: number, digits = 1): string {
  return `${(100 * ratio).toFixed(digits)}%`;
}

/** 1234 → "1.23k", 5.6e6 → "5.60M": rates without a wall of digits. */
export function formatRate(value: number): string {
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)}G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(2)}k`;
  return value.toFixed(value >= 100 ? 0 : 1);
}

export function formatAge(ms: number, now = Date.now()): string {
  return ms > 0 ? `${formatDuration((now - ms) / 1000)} ago` : '-';
}

/** Left-aligned columns separated by two spaces; the header row first. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** A proto number field of a nested message (optional and nullable in the generated types). */
export function num(value: number | null | undefined): number {
  return Number(value ?? 0);
}

export function str(value: string | null | undefined): string {
  return value ?? '';
}
