// Starts the rank processes of a comm test (test/comm/rank-main.ts) and collects what they report.
// Every process is killed when the test ends, whether it passed or not.
import type { ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';

import { RankGroup, type RankMessage } from '../../worker-native/host/rank-processes.js';

const rankMain = fileURLToPath(new URL('./rank-main.js', import.meta.url));

export interface ScenarioOptions {
  scenario: string;
  size: number;
  /** The ranks to start; all of them by default. */
  ranks?: number[];
  redisPort: number;
  prefix: string;
  timeoutMs: number;
  /** Extra arguments for one rank, e.g. ['--value', '3']. */
  extra?: (rank: number) => string[];
  env?: NodeJS.ProcessEnv;
  nodeOptions?: string[];
}

/** What a rank reported last: {done: true, ok, rank, ...}. */
export interface Done extends RankMessage {
  ok: boolean;
  rank: number;
  error?: string;
  elapsedMs?: number;
}

export function startScenario(t: ExecutionContext, o: ScenarioOptions): RankGroup {
  const group = new RankGroup({
    script: rankMain,
    ranks: o.ranks ?? [...Array(o.size).keys()],
    args: (rank) => [
      ...['--scenario', o.scenario, '--rank', String(rank), '--size', String(o.size)],
      ...['--redis-port', String(o.redisPort), '--prefix', o.prefix, '--timeout-ms', String(o.timeoutMs)],
      ...(o.extra?.(rank) ?? []),
    ],
    env: o.env,
    nodeOptions: o.nodeOptions,
  });
  t.teardown(() => group.stop());
  return group;
}

/**
 * Waits until every started rank exited and returns each one's final report, by rank. Every rank must
 * have reported, except those the test killed.
 */
export async function finished(
  t: ExecutionContext,
  group: RankGroup,
  killed: readonly number[] = [],
): Promise<Map<number, Done>> {
  const reports = new Map<number, Done>();
  for (const exit of await group.exited()) {
    if (killed.includes(exit.rank)) continue;
    const done = exit.messages.find((m) => m.done === true) as Done | undefined;
    if (exit.code !== 0 || !done) {
      t.fail(
        `rank ${exit.rank} exited with ${exit.code ?? exit.signal} without a report; stderr: ${exit.stderr}`,
      );
      continue;
    }
    reports.set(exit.rank, done);
  }
  return reports;
}

/** Runs a scenario to the end; every rank must report success. */
export async function runScenario(t: ExecutionContext, o: ScenarioOptions): Promise<Done[]> {
  const reports = await finished(t, startScenario(t, o));
  const all = [...reports.values()];
  for (const r of all) t.true(r.ok, `rank ${r.rank} failed: ${r.error}`);
  return all;
}
