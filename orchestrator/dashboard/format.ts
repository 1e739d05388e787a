// Numbers as people read them on the dashboard.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n: number): string {
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${UNITS[unit]}`;
}

export function duration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

export function rate(value: number | null): string {
  if (value === null) return '–';
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(value >= 100 ? 0 : 1);
}

/** Small ratios keep two significant digits (CPU devices run at a fraction of a percent MFU). */
export function percent(ratio: number | null, digits = 1): string {
  if (ratio === null) return '–';
  const p = 100 * ratio;
  return p !== 0 && Math.abs(p) < 1 ? `${p.toPrecision(2)}%` : `${p.toFixed(digits)}%`;
}

export function fixed(value: number | null, digits: number): string {
  return value === null ? '–' : value.toFixed(digits);
}

export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}

export function ago(ms: number, now = Date.now()): string {
  return ms > 0 ? `${duration((now - ms) / 1000)} ago` : '–';
}
