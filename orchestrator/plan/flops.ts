// Model FLOPs of a training step, the numerator of MFU. Counted as the model needs them, not as
// the kernels spend them: no recomputation (activation checkpointing, flash-attention backward),
// no masked-out half of causal attention.
//   linear layers: 2 FLOPs per weight per token forward, 4 backward (dX and dW)
//   causal attention per layer: QKᵀ and P·V over the S²/2 visible pairs: 2·S²·hidden forward,
//   twice that backward
import type { ModelConfig } from '../../core/model-config.js';

/** Weights that take part in matrix products (embedding lookups do not; a tied LM head does). */
export function matmulParameters(c: ModelConfig): number {
  const headDim = c.hidden_size / c.num_attention_heads;
  const kvDim = c.num_key_value_heads * headDim;
  const perLayer =
    2 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * kvDim + 3 * c.hidden_size * c.intermediate_size;
  return c.num_hidden_layers * perLayer + c.vocab_size * c.hidden_size;
}

/** Forward + backward FLOPs of one sequence of seqLen tokens. */
export function trainingFlopsPerSequence(c: ModelConfig, seqLen: number): number {
  const linear = 6 * matmulParameters(c) * seqLen;
  const attention = 3 * c.num_hidden_layers * 2 * seqLen * seqLen * c.hidden_size;
  return linear + attention;
}

/** Model FLOPs of one optimizer step (gradient accumulation × one sequence each). */
export function trainingFlopsPerStep(c: ModelConfig, seqLen: number, gradAccumulation: number): number {
  return gradAccumulation * trainingFlopsPerSequence(c, seqLen);
}

/** Model FLOPs utilisation: achieved model FLOP/s over the devices' peak. */
export function mfu(
  flopsPerStep: number,
  stepSeconds: number,
  devices: number,
  peakFlopsPerDevice: number,
): number {
  if (stepSeconds <= 0 || devices <= 0 || peakFlopsPerDevice <= 0) return 0;
  return flopsPerStep / stepSeconds / (devices * peakFlopsPerDevice);
}
