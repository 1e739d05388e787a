// Predicted device memory of one rank, by replaying the native trainer's allocations
// (worker-native/src/train/model_pass.cc, model/qwen2_layer.cc, ring/ring_attention.cc,
// train/parameter_store.cc, train/sharded_adamw.cc) on a virtual arena with the same rounding.
// precision 'fp32' is the CPU trainer (float32, 64-byte blocks); 'bf16' is the CUDA trainer
// (train/cuda_backend.cc, model/cuda_model_kernels.cc, ring/cuda_ring_attention.cc: float32
// masters, gradients and moments, bf16 compute weights and activations, the kernels' float32
// scratch, 256-byte blocks of the device region). Replaying the schedule, rather than summing a formula, gets the peak right: it is
// reached at a particular moment (the deepest point of the backward, say), not by everything at
// once. A test runs the real trainer on several configurations and holds this to its measured peak.
import type { ActivationCheckpointing, Offload, Precision } from '../../core/policies.js';
import type { ModelConfig } from '../../core/model-config.js';
import { CATEGORIES, type Category } from '../../core/reports.js';

export { CATEGORIES, type Category };

export type Breakdown = Record<Category, number>;

// Block rounding of the CPU arena (tensor/arena.h) and of the CUDA device region
// (kernels/cuda/arena_ledger.h); pinned host memory rounds like the CPU arena.
const CPU_ALIGN = 64;
const CUDA_ALIGN = 256;
const roundUp = (bytes: number, align = CPU_ALIGN) => Math.ceil(bytes / align) * align;

/** Counts like the native Arena, and remembers what was live at the peak. */
class VirtualArena {
  constructor(private readonly align: number) {}
  private readonly live = new Map<number, { category: Category; bytes: number }>();
  private next = 1;
  current = 0;
  peak = 0;
  atPeak: Breakdown = emptyBreakdown();

  alloc(category: Category, bytes: number): number {
    const id = this.next++;
    if (bytes <= 0) return id;
    const counted = roundUp(bytes, this.align);
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

/**
 * The device scratch a kernel table takes inside its calls and frees before they return (the
 * layer and model pass allocate the rest). Each replays its backend's calls at the point the
 * model pass makes them.
 */
interface KernelScratch {
  /** Host ints (token ids, positions) copied to the device for one call. */
  upload(): void;
  linearForward(outFeatures: number): void;
  rmsNormBackward(): void;
  attentionForward(): void;
  attentionBackward(): void;
  mlpBackward(): void;
  crossEntropy(chunkTokens: number): void;
}

interface Shape {
  c: ModelConfig;
  /** This rank's tokens. */
  T: number;
  Q: number;
  KV: number;
  H: number;
  I: number;
  V: number;
  ring: boolean;
}

/** The CPU kernels (kernels/cpu, ring/ring_attention.cc): float32, their own workspaces. */
function cpuScratch(dev: VirtualArena, s: Shape): KernelScratch {
  const { c, T, Q, KV, H, I, V, ring } = s;
  const f32 = 4;
  return {
    upload: () => {},
    linearForward: () => {},
    rmsNormBackward: () => {},
    attentionForward: () => {
      const ws = dev.alloc('workspace', attentionWorkspace(T, T, c, false) * f32);
      if (!ring) return dev.free(ws);
      const held = dev.alloc('ring_buffers', 2 * T * KV * f32);
      const arriving = dev.alloc('ring_buffers', 2 * T * KV * f32);
      const partO = dev.alloc('ring_buffers', T * Q * f32);
      const partLse = dev.alloc('ring_buffers', T * H * f32);
      dev.free(partLse, partO, arriving, held, ws);
    },
    attentionBackward: () => {
      const ws = dev.alloc('workspace', attentionWorkspace(T, T, c, true) * f32);
      if (!ring) return dev.free(ws);
      const ids = [0, 1, 2, 3, 4].map(() => dev.alloc('ring_buffers', 2 * T * KV * f32));
      dev.free(...ids.reverse(), ws);
    },
    mlpBackward: () => dev.free(dev.alloc('workspace', 2 * T * I * f32)),
    crossEntropy: (chunk) => dev.free(dev.alloc('cross_entropy', chunk * V * f32)),
  };
}

// kernels/cuda/rmsnorm.h: the dweight partial sums of each group of this many rows.
const RMSNORM_GROUP_ROWS = 64;
// kernels/cuda/cross_entropy.cu aligns the pieces of its workspace to this.
const CE_ALIGN = 256;

/**
 * The CUDA kernel table (model/cuda_model_kernels.cc, ring/cuda_ring_attention.cc): each linear
 * forward accumulates in a float32 buffer before the bf16 rounding; the flash backward adds into
 * float32 dq/dk/dv; the MLP backward holds bf16 dact, dgate and dup; the ring's K/V travel in bf16
 * and its dK/dV accumulators, running output and each step's partial output in float32.
 */
function cudaScratch(dev: VirtualArena, s: Shape): KernelScratch {
  const { c, T, Q, KV, H, I, V, ring } = s;
  const f32 = 4;
  const bf16 = 2;
  const transient = (category: Category, bytes: number) => dev.free(dev.alloc(category, bytes));
  return {
    upload: () => transient('workspace', T * 4),
    linearForward: (out) => transient('workspace', T * out * f32),
    rmsNormBackward: () => transient('workspace', Math.ceil(T / RMSNORM_GROUP_ROWS) * c.hidden_size * f32),
    attentionForward: () => {
      if (!ring) return;
      const ids = [
        dev.alloc('ring_buffers', 2 * T * KV * bf16), // held
        dev.alloc('ring_buffers', 2 * T * KV * bf16), // arriving
        dev.alloc('ring_buffers', T * Q * f32), // the running output
        dev.alloc('ring_buffers', T * Q * f32), // a step's partial output (float32: merged unrounded)
        dev.alloc('ring_buffers', T * H * f32), // and its log-sum-exp
      ];
      dev.free(...ids);
    },
    attentionBackward: () => {
      const ids = ring
        ? [
            dev.alloc('ring_buffers', 2 * T * KV * bf16), // held
            dev.alloc('ring_buffers', 2 * T * KV * bf16), // arriving
            dev.alloc('ring_buffers', 2 * T * KV * f32), // dK/dV going on
            dev.alloc('ring_buffers', 2 * T * KV * f32), // dK/dV arriving
            dev.alloc('workspace', T * Q * f32), // dq
          ]
        : [
            dev.alloc('workspace', T * Q * f32),
            dev.alloc('workspace', T * KV * f32),
            dev.alloc('workspace', T * KV * f32),
          ];
      ids.push(dev.alloc('workspace', T * H * f32)); // rowsum(dO ∘ O)
      dev.free(...ids);
    },
    mlpBackward: () => {
      const dact = dev.alloc('workspace', T * I * bf16);
      const dgate = dev.alloc('workspace', T * I * bf16);
      const dup = dev.alloc('workspace', T * I * bf16);
      dev.free(dact, dgate, dup);
    },
    crossEntropy: (chunk) => {
      const al = (bytes: number) => roundUp(bytes, CE_ALIGN);
      const labels = dev.alloc('cross_entropy', T * 4);
      const ws = dev.alloc(
        'cross_entropy',
        al(chunk * V * f32) + al(chunk * V * bf16) + al(T * 8) + al(T * 4) + al(2 * 8),
      );
      dev.free(ws, labels);
    },
  };
}

// kernels/cuda/optimizer.h: the gradient norm's result and its per-block partial sums, doubles.
const SUM_OF_SQUARES_BYTES = 512 * 8 + 2 * 4;

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
  // 'fp32' is the CPU trainer, float32 throughout. 'bf16' is the CUDA trainer: float32 master
  // weights, gradients and moments; a bf16 compute copy of the weights; bf16 activations.
  const bf16 = m.precision === 'bf16';
  const act = bf16 ? 2 : 4;
  const f32 = 4;
  const shard = Math.ceil(P / N);
  const paramsOnHost = m.offload === 'params+optimizer';
  const optimizerOnHost = m.offload !== 'none';
  const hostBlock = (bytes: number) => roundUp(bytes, CPU_ALIGN);

  const dev = new VirtualArena(bf16 ? CUDA_ALIGN : CPU_ALIGN);
  const kernels = (bf16 ? cudaScratch : cpuScratch)(dev, { c, T, Q, KV, H, I, V, ring: N > 1 });
  let host = 0;
  // Persistent: the CUDA backend's norm buffer, the parameter store, then the optimizer's shard.
  if (bf16) dev.alloc('workspace', SUM_OF_SQUARES_BYTES);
  const storeBlocks = bf16 ? [P * f32, P * 2] : [P * f32]; // masters (+ the bf16 compute copy)
  if (paramsOnHost) host += [...storeBlocks, P * f32].reduce((sum, b) => sum + hostBlock(b), 0);
  else {
    for (const b of storeBlocks) dev.alloc('weights', b);
    dev.alloc('gradients', P * f32);
  }
  if (optimizerOnHost) {
    host += 2 * hostBlock(shard * f32); // exp_avg, exp_avg_sq
    if (m.offload === 'optimizer') host += 2 * hostBlock(shard * f32); // the step's shard copies
  } else {
    dev.alloc('optimizer', shard * f32);
    dev.alloc('optimizer', shard * f32);
  }

  // Under params+optimizer each unit's compute weights are staged on the device while used; the
  // CUDA trainer also prefetches the next layer's on its copy stream (ParameterStore::Prefetch).
  let prefetched: { unit: string; id: number } | undefined;
  const stage = (unit: string, elements: number): number => {
    if (!paramsOnHost) return 0;
    if (prefetched) {
      const p = prefetched;
      prefetched = undefined;
      if (p.unit === unit) return p.id;
      dev.free(p.id);
    }
    return dev.alloc('weights', elements * act);
  };
  const prefetch = (unit: string, elements: number) => {
    if (!paramsOnHost || !bf16) return;
    if (prefetched) dev.free(prefetched.id);
    prefetched = { unit, id: dev.alloc('weights', elements * act) };
  };
  const layerUnit = (l: number) => `layer ${l}`;

  interface Saved {
    toAttention: number[];
    attention: number[];
    fromAttention: number[];
  }
  const forwardToAttention = (): number[] => {
    const ids = [
      dev.alloc('activations', T * C * act),
      dev.alloc('activations', T * f32),
      dev.alloc('activations', T * Q * act),
      dev.alloc('activations', T * KV * act),
      dev.alloc('activations', T * KV * act),
    ];
    for (const out of [Q, KV, KV]) kernels.linearForward(out);
    return ids;
  };
  const forwardAttention = (): number[] => {
    const ids = [dev.alloc('activations', T * Q * act), dev.alloc('activations', T * H * f32)];
    kernels.attentionForward();
    return ids;
  };
  const forwardFromAttention = (): number[] => {
    const mid = dev.alloc('activations', T * C * act);
    kernels.linearForward(C);
    return [
      mid,
      dev.alloc('activations', T * C * act),
      dev.alloc('activations', T * f32),
      dev.alloc('activations', T * I * act),
      dev.alloc('activations', T * I * act),
      dev.alloc('activations', T * I * act),
    ];
  };
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
  kernels.upload(); // positions
  const stream: number[] = [];
  {
    const embed = stage('embed', layout.table);
    if (L > 0) prefetch(layerUnit(0), layout.perLayer);
    stream.push(dev.alloc('activations', T * C * act));
    kernels.upload(); // ids
    dev.free(embed);
  }
  const saved: Saved[] = [];
  for (let l = 0; l < L; l++) {
    const w = stage(layerUnit(l), layout.perLayer);
    if (l + 1 < L) prefetch(layerUnit(l + 1), layout.perLayer);
    stream.push(dev.alloc('activations', T * C * act));
    const s = layerForward();
    release(s, keeps(m.activationCheckpointing, l));
    saved.push(s);
    dev.free(w);
  }
  const grad = dev.alloc('activations', T * C * act);
  {
    const norm = stage('final norm', C);
    const head = stage('lm head', layout.table);
    if (L > 0) prefetch(layerUnit(L - 1), layout.perLayer);
    const finalNorm = dev.alloc('cross_entropy', T * C * act);
    const finalRstd = dev.alloc('cross_entropy', T * f32);
    const dfinal = dev.alloc('cross_entropy', T * C * act);
    const dhead = dev.alloc('gradients', layout.table * f32);
    kernels.crossEntropy(Math.min(m.ceChunkTokens ?? 256, T));
    dev.free(finalNorm);
    dev.free(dhead);
    const dnormWeight = dev.alloc('gradients', C * f32);
    kernels.rmsNormBackward();
    dev.free(dnormWeight, dfinal, finalRstd, head, norm);
  }
  dev.free(stream[L]!);
  for (let l = L - 1; l >= 0; l--) {
    const w = stage(layerUnit(l), layout.perLayer);
    if (l > 0) prefetch(layerUnit(l - 1), layout.perLayer);
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
    kernels.mlpBackward();
    kernels.rmsNormBackward();
    const dq = dev.alloc('workspace', T * Q * act);
    const dk = dev.alloc('workspace', T * KV * act);
    const dv = dev.alloc('workspace', T * KV * act);
    const dattn = dev.alloc('workspace', T * Q * act);
    kernels.attentionBackward();
    dev.free(dattn);
    kernels.rmsNormBackward();
    dev.free(dv, dk, dq, dnorm);
    const done = saved[l]!;
    dev.free(...done.toAttention, ...done.attention, ...done.fromAttention, stream[l]!);
    dev.free(dlayer, w);
  }
  {
    const dembed = dev.alloc('gradients', layout.table * f32);
    kernels.upload(); // ids
    dev.free(grad, dembed);
  }
  dev.free(...rope);
  // With parameters on the host, each gradient block is copied there before it is added: the
  // largest (the embedding table) is the host's transient peak.
  if (paramsOnHost) host += hostBlock(Math.max(layout.table, layout.perLayer) * f32);
  return { peak: dev.peak, breakdown: dev.atPeak, host, parameters: P };
}
