// Predicted device memory of one rank, by replaying the native trainer's allocations
// (worker-native/src/train/model_pass.cc, model/qwen2_layer.cc, ring/ring_attention.cc,
// train/parameter_store.cc, train/sharded_adamw.cc) on a virtual arena with the same 64-byte
// rounding. Replaying the schedule, rather than summing a formula, gets the peak right: it is
// reached at a particular moment (the deepest point of the backward, say), not by everything at
// once. A test runs the real trainer on several configurations and holds this to its measured peak.
import type { ActivationCheckpointing, Offload, Precision } from '../../core/policies.js';
import type { ModelConfig } from '../../core/model-config.js';
import { CATEGORIES, type Category } from '../../core/reports.js';

export { CATEGORIES, type Category };

export type Breakdown = Record<Category, number>;

const ALIGN = 64;
const roundUp = (bytes: number) => Math.ceil(bytes / ALIGN) * ALIGN;

/** Counts like the native Arena, and remembers what was live at the peak. */
class VirtualArena {
  private readonly live = new Map<number, { category: Category; bytes: number }>();
  private next = 1;
  current = 0;
  peak = 0;
  atPeak: Breakdown = emptyBreakdown();

  alloc(category: Category, bytes: number): number {
    const id = this.next++;
    if (bytes <= 0) return id;
    const counted = roundUp(bytes);
    this.live.set(id, { category, bytes: counted });
    this.current += counted;
    if (this.current > this.peak) {
      this.peak = this.current;
      this.atPeak = emptyBreakdown();
      for (const b of this.live.values()) this.atPeak[b.category] += b.bytes;
    }
    return id;
  }

  free(...ids: number[]): void {
    for (const id of ids) {
      const b = this.live.get(id);
      if (!b) continue;
      this.current -= b.bytes;
      this.live.delete(id);
    }
  }
}

function emptyBreakdown(): Breakdown {
  return {
    weights: 0,
    gradients: 0,
    optimizer: 0,
    activations: 0,
    ring_buffers: 0,
    cross_entropy: 0,
    workspace: 0,
  };
}

export interface MemoryInputs {
  config: ModelConfig;
  seqLen: number;
  devices: number;
  precision: Precision;
  activationCheckpointing: ActivationCheckpointing;
  offload: Offload;
  /** Tokens per cross-entropy chunk (the trainer's ceChunkTokens). */
  ceChunkTokens?: number;
}

export interface MemoryPrediction {
  /** Peak bytes of the device arena, and what was live at that moment. */
  peak: number;
  breakdown: Breakdown;
  /** Bytes the host arena holds for offloaded state. */
  host: number;
  parameters: number;
}

/** Layer l keeps its activations until backward (the trainer's CheckpointPolicy::ForLayer). */
function keeps(policy: ActivationCheckpointing, layer: number): 'everything' | 'nothing' | 'attention' {
  if (policy === 'none') return 'everything';
  if (policy === 'full') return 'nothing';
  if (policy === 'selective') return 'attention';
  const k = Number(policy.slice('every-'.length));
  return (layer + 1) % k === 0 ? 'everything' : 'nothing';
}

// Block sizes of the CPU flash-attention kernel (kernels/cpu/attention.cc).
const BLOCK_ROWS = 256;
const BLOCK_K = 512;

function attentionWorkspace(qLen: number, kvLen: number, c: ModelConfig, backward: boolean): number {
  const group = c.num_attention_heads / c.num_key_value_heads;
  const D = c.hidden_size / c.num_attention_heads;
  const blockQ = Math.min(qLen, Math.max(1, Math.floor(BLOCK_ROWS / group)));
  const blockK = Math.min(kvLen, BLOCK_K);
  const rows = group * blockQ;
  return backward ? 3 * rows * D + 2 * rows * blockK + 2 * rows : 2 * rows * D + rows * blockK + 3 * rows;
}

export function parameterLayout(c: ModelConfig): { total: number; perLayer: number; table: number } {
  const D = c.hidden_size / c.num_attention_heads;
  const kv = c.num_key_value_heads * D;
  const perLayer =
    2 * c.hidden_size * c.hidden_size +
    2 * c.hidden_size * kv +
    2 * kv +
    c.hidden_size +
    3 * c.hidden_size * c.intermediate_size +
    2 * c.hidden_size;
  const table = c.vocab_size * c.hidden_size;
  return {
    total: c.num_hidden_layers * perLayer + table + c.hidden_size + (c.tie_word_embeddings ? 0 : table),
    perLayer,
    table,
  };
}

export function predictMemory(m: MemoryInputs): MemoryPrediction {
  const c = m.config;
  const N = m.devices;
  const T = m.seqLen / N;
  const C = c.hidden_size;
  const H = c.num_attention_heads;
  const D = C / H;
  const Q = H * D;
  const KV = c.num_key_value_heads * D;
  const I = c.intermediate_size;
  const V = c.vocab_size;
  const L = c.num_hidden_layers;
  const layout = parameterLayout(c);
  const P = layout.total;
  // Bytes per element: the CPU trainer is float32 throughout; the CUDA design keeps bf16
  // weights and activations with float32 gradients, master weights and moments.
  const bf16 = m.precision === 'bf16';
  const act = bf16 ? 2 : 4;
  const weight = bf16 ? 2 : 4;
  const f32 = 4;
  const shard = Math.ceil(P / N);
  const paramsOnHost = m.offload === 'params+optimizer';
  const optimizerOnHost = m.offload !== 'none';

  const dev = new VirtualArena();
  let host = 0;
  // Persistent: the parameter store, then the optimizer's shard.
  if (paramsOnHost) host += roundUp(P * f32) * 2;
  else {
    dev.alloc('weights', P * weight);
    dev.alloc('gradients', P * f32);
  }
  const moments = (bf16 ? 3 : 2) * shard * f32; // exp_avg, exp_avg_sq (+ master weights in bf16)
  if (optimizerOnHost) host += moments + (m.offload === 'optimizer' ? 2 * shard * f32 : 0);
  else dev.alloc('optimizer', moments);

  const stage = (elements: number) => (paramsOnHost ? dev.alloc('weights', elements * weight) : 0);
  const ring = N > 1;
  const attentionForward = () => {
    const ws = dev.alloc('workspace', attentionWorkspace(T, T, c, false) * f32);
    if (!ring) return dev.free(ws);
    const held = dev.alloc('ring_buffers', 2 * T * KV * act);
    const arriving = dev.alloc('ring_buffers', 2 * T * KV * act);
    const partO = dev.alloc('ring_buffers', T * Q * act);
    const partLse = dev.alloc('ring_buffers', T * H * f32);
    dev.free(partLse, partO, arriving, held, ws);
  };
  const attentionBackward = () => {
    const ws = dev.alloc('workspace', attentionWorkspace(T, T, c, true) * f32);
    if (!ring) return dev.free(ws);
    const ids = [0, 1, 2, 3, 4].map(() => dev.alloc('ring_buffers', 2 * T * KV * act));
    dev.free(...ids.reverse(), ws);
  };
  interface Saved {
    toAttention: number[];
    attention: number[];
    fromAttention: number[];
  }
  const forwardToAttention = (): number[] => [
    dev.alloc('activations', T * C * act),
    dev.alloc('activations', T * f32),
    dev.alloc('activations', T * Q * act),
    dev.alloc('activations', T * KV * act),
    dev.alloc('activations', T * KV * act),
  ];
  const forwardAttention = (): number[] => {
    const ids = [dev.alloc('activations', T * Q * act), dev.alloc('activations', T * H * f32)];
    attentionForward();
    return ids;
  };
  const forwardFromAttention = (): number[] => [
    dev.alloc('activations', T * C * act),
    dev.alloc('activations', T * C * act),
    dev.alloc('activations', T * f32),
    dev.alloc('activations', T * I * act),
    dev.alloc('activations', T * I * act),
    dev.alloc('activations', T * I * act),
  ];
  const layerForward = (): Saved => ({
    toAttention: forwardToAttention(),
    attention: forwardAttention(),
    fromAttention: forwardFromAttention(),
  });
  const release = (s: Saved, keep: 'everything' | 'nothing' | 'attention') => {
    if (keep === 'everything') return;
    dev.free(...s.toAttention, ...s.fromAttention);
    s.toAttention = [];
    s.fromAttention = [];
    if (keep === 'nothing') {
      dev.free(...s.attention);
      s.attention = [];
    }
  };

  // ForwardBackward of one micro-batch.
  const rope = [dev.alloc('activations', T * (D / 2) * f32), dev.alloc('activations', T * (D / 2) * f32)];
  const stream: number[] = [];
  {
    const embed = stage(layout.table);
    stream.push(dev.alloc('activations', T * C * act));
    dev.free(embed);
  }
  const saved: Saved[] = [];
  for (let l = 0; l < L; l++) {
    const w = stage(layout.perLayer);
    stream.push(dev.alloc('activations', T * C * act));
    const s = layerForward();
    release(s, keeps(m.activationCheckpointing, l));
    saved.push(s);
    dev.free(w);
  }
  const grad = dev.alloc('activations', T * C * act);
  {
    const norm = stage(C);
    const head = stage(layout.table);
    const finalNorm = dev.alloc('cross_entropy', T * C * act);
    const finalRstd = dev.alloc('cross_entropy', T * f32);
    const dfinal = dev.alloc('cross_entropy', T * C * act);
    const dhead = dev.alloc('gradients', layout.table * f32);
    const chunk = Math.min(m.ceChunkTokens ?? 256, T);
    const ws = dev.alloc('cross_entropy', chunk * V * f32);
    dev.free(ws, finalNorm);
    dev.free(dhead);
    const dnormWeight = dev.alloc('gradients', C * f32);
    dev.free(dnormWeight, dfinal, finalRstd, head, norm);
  }
  dev.free(stream[L]!);
  for (let l = L - 1; l >= 0; l--) {
    const w = stage(layout.perLayer);
    const s = saved[l]!;
    const keep = keeps(m.activationCheckpointing, l);
    if (keep === 'nothing') {
      const out = dev.alloc('activations', T * C * act);
      saved[l] = layerForward();
      dev.free(out);
    } else if (keep === 'attention') {
      const out = dev.alloc('activations', T * C * act);
      s.toAttention = forwardToAttention();
      s.fromAttention = forwardFromAttention();
      dev.free(out);
    }
    const dlayer = dev.alloc('gradients', layout.perLayer * f32);
    // LayerBackward
    const dnorm = dev.alloc('workspace', T * C * act);
    const scratch = dev.alloc('workspace', 2 * T * I * act);
    dev.free(scratch);
    const dq = dev.alloc('workspace', T * Q * act);
    const dk = dev.alloc('workspace', T * KV * act);
    const dv = dev.alloc('workspace', T * KV * act);
    const dattn = dev.alloc('workspace', T * Q * act);
    attentionBackward();
    dev.free(dattn, dv, dk, dq, dnorm);
    const done = saved[l]!;
    dev.free(...done.toAttention, ...done.attention, ...done.fromAttention, stream[l]!);
    dev.free(dlayer, w);
  }
  {
    const dembed = dev.alloc('gradients', layout.table * f32);
    dev.free(grad, dembed);
  }
  dev.free(...rope);
  // With parameters on the host, each gradient block is copied there before it is added: the
  // largest (the embedding table) is the host's transient peak.
  if (paramsOnHost) host += roundUp(Math.max(layout.table, layout.perLayer) * f32);
  return { peak: dev.peak, breakdown: dev.atPeak, host, parameters: P };
}
