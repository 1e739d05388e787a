// The learning-rate schedule, a pure function of the step so that a resumed run continues on
// exactly the same curve: constant (the seed's 1e-5), or linear warmup then cosine decay to min_lr.
export interface Schedule {
  kind: 'constant' | 'cosine';
  lr: number;
  warmupSteps: number;
  minLr: number;
  totalSteps: number;
}

/** The learning rate of optimizer step `step` (1-based: the first step is 1). */
export function learningRate(s: Schedule, step: number): number {
  if (s.warmupSteps > 0 && step <= s.warmupSteps) return (s.lr * step) / s.warmupSteps;
  if (s.kind === 'constant') return s.lr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}
