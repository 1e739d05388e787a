// The plan each job was accepted with, kept in Redis beside its record: the dashboard shows
// device memory against it, the watchdog scales its limits by its step time.
import type { Redis } from 'ioredis';

import type { Keys } from '../../control/keys.js';
import type { PlanResult } from './planner.js';

export class PlanStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  private key(jobId: string): string {
    return `${this.keys.job(jobId)}:plan`;
  }

  async save(jobId: string, plan: PlanResult): Promise<void> {
    // The candidates are for the planner's caller; the job keeps what was chosen.
    const { candidates: _candidates, ...kept } = plan;
    await this.redis.set(this.key(jobId), JSON.stringify(kept));
  }

  async get(jobId: string): Promise<Omit<PlanResult, 'candidates'> | undefined> {
    const raw = await this.redis.get(this.key(jobId));
    return raw ? (JSON.parse(raw) as Omit<PlanResult, 'candidates'>) : undefined;
  }
}
