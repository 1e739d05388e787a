// The `watch` progress line: step/total as a bar, loss, tokens/s, MFU, ETA and restarts. ETA
// is the remaining steps at the mean pace of the recent steps (one slow step does not swing it).
import { formatDuration, formatPercent, formatRate } from './format.js';

export const PACE_WINDOW = 20;

export interface WatchState {
  jobId: string;
  state: string;
  step: number;
  totalSteps: number;
  loss?: number;
  tokensPerSecond?: number;
  mfu?: number;
  restarts: number;
  message: string;
  /** Durations of the most recent steps, oldest first (at most PACE_WINDOW). */
  recentStepSeconds: number[];
}

export function recordStepSeconds(state: WatchState, seconds: number): void {
  state.recentStepSeconds.push(seconds);
  if (state.recentStepSeconds.length > PACE_WINDOW) state.recentStepSeconds.shift();
}

/** Seconds left at the recent pace; undefined before the first step or once done. */
export function etaSeconds(state: WatchState): number | undefined {
  const recent = state.recentStepSeconds;
  if (recent.length === 0 || state.step >= state.totalSteps) return undefined;
  const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
  return (state.totalSteps - state.step) * mean;
}

export function progressBar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, fraction));
  const filled = Math.round(f * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

export function progressLine(state: WatchState, barWidth = 24): string {
  const fraction = state.totalSteps > 0 ? state.step / state.totalSteps : 0;
  const eta = etaSeconds(state);
  const parts = [
    `${state.jobId} ${state.state}`,
    `${progressBar(fraction, barWidth)} ${state.step}/${state.totalSteps} ${formatPercent(fraction, 0)}`,
    `loss ${state.loss === undefined ? '-' : state.loss.toFixed(4)}`,
    `${state.tokensPerSecond === undefined ? '-' : formatRate(state.tokensPerSecond)} tok/s`,
    `MFU ${state.mfu === undefined ? '-' : formatPercent(state.mfu)}`,
    `ETA ${eta === undefined ? '-' : formatDuration(eta)}`,
    `restarts ${state.restarts}`,
  ];
  return parts.join(' | ');
}
