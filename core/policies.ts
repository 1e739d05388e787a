// The memory policies a job runs under: the spec names them (or 'auto', resolved by the planner),
// the planner predicts their memory, the native trainer applies them.

/**
 * What each decoder layer keeps from its forward to its backward (its input is always kept):
 * - 'none': everything; nothing is recomputed.
 * - 'full': nothing more; the backward re-runs the layer forward (the ring included).
 * - 'every-K': layer l (0-based) keeps everything when (l + 1) % K == 0 — the last layer of each
 *   group of K — and the others recompute as under 'full'. 'every-1' is 'none'.
 * - 'selective': the attention output and its log-sum-exp (the ring's result); the backward
 *   recomputes norms, projections, RoPE and MLP around them without running the ring again.
 * Gradients are bitwise identical under every policy.
 */
export type ActivationCheckpointing = 'none' | 'full' | 'selective' | `every-${number}`;

/**
 * Where state lives (results are bitwise identical in every mode):
 * - 'none': parameters, gradients and AdamW moments on the device.
 * - 'optimizer': the AdamW moments and the optimizer step in host memory.
 * - 'params+optimizer': parameters and gradients in host memory too; each layer's weights are
 *   copied to the device just before use, its gradients computed there and added on the host.
 */
export type Offload = 'none' | 'optimizer' | 'params+optimizer';

/** Storage precision of parameters and activations (accumulation is always float32). */
export type Precision = 'fp32' | 'bf16';
