// What the NIAH tests share: a checkpoint folder whose model's behaviour is known in advance.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { writeSafetensors } from '../../checkpoints/safetensors.js';
import type { NiahCase } from '../../eval/niah-cases.js';
import { hfConfig } from '../../worker-native/host/checkpoint-io.js';
import type { Qwen2Config } from '../../worker-native/model.js';
import { createTrainer } from '../../worker-native/trainer.js';
import { random } from '../kernels/numeric.js';
import { trainerOptions } from '../trainer/fixtures.js';

/**
 * A "copy" model over the byte vocabulary: large random tied embeddings make the head's argmax the
 * current token; `layerStd` of random layer weights lets attention (the ring) shape the logits.
 */
export async function writeCopyModel(dir: string, layerStd: number): Promise<Qwen2Config> {
  const config: Qwen2Config = {
    hidden_size: 64,
    intermediate_size: 96,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    vocab_size: 259,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
  };
  const trainer = await createTrainer(null, trainerOptions(config));
  const views = trainer.parameterViews();
  const params = trainer.snapshot().params;
  trainer.close();
  const rand = random(3);
  for (const v of views) {
    for (let i = 0; i < v.numel; i++) {
      const k = v.offset + i;
      if (v.name === 'model.embed_tokens.weight') params[k] = rand();
      else if (v.name.endsWith('norm.weight')) params[k] = 1;
      else params[k] = layerStd * rand();
    }
  }
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify(
      hfConfig(config, { seqLen: 4096, precision: 'fp32', specials: { bos: 256, eos: 257, pad: 258 } }),
    ),
  );
  await writeSafetensors(
    join(dir, 'model.safetensors'),
    views.map((v) => ({
      name: v.name,
      dtype: 'F32',
      shape: v.shape,
      data: params.subarray(v.offset, v.offset + v.numel),
    })),
  );
  return config;
}

/** Answer positions where the copy model is right: the token before equals the token after. */
export function copyCorrect(c: NiahCase): number {
  let n = 0;
  for (let t = c.answerStart - 1; t < c.contextLength - 1; t++) n += Number(c.ids[t] === c.ids[t + 1]);
  return n;
}
