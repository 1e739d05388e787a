// Input embeddings for marked spans on a CUDA device: the spliced float32 rows are rounded to bf16
// by the same conversion that makes the compute copy of the weights (FloatToBf16), so a sequence
// with spliced vectors and one whose embedding rows hold those vectors run the same kernels on the
// same bits. Needs a GPU.
import type { Qwen2Config } from '../../worker-native/model.js';
import { createTrainer } from '../../worker-native/trainer.js';
import { spliceAgainstTableRows } from '../eval/vniah-fixtures.js';
import { trainerOptions } from '../trainer/fixtures.js';
import { gpuTest } from './gpu.js';

/** head_dim 64 (what the flash kernels take), untied head, room for the reference's rows 128…. */
const config: Qwen2Config = {
  hidden_size: 128,
  intermediate_size: 256,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  num_hidden_layers: 2,
  vocab_size: 256,
  rope_theta: 1e6,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};

gpuTest('input embeddings replace the lookup at exactly the marked tokens on the GPU', async (t) => {
  const r = await spliceAgainstTableRows(() =>
    createTrainer(null, trainerOptions(config, { device: 'cuda:0', initializerRange: 0.1 })),
  );
  t.is(r.spliced.lossSum, r.reference.lossSum);
  t.is(r.otherIds.lossSum, r.reference.lossSum);
  t.not(r.tokensOnly.lossSum, r.reference.lossSum);
  t.not(r.shifted.lossSum, r.reference.lossSum);
  t.log(`loss: spliced ${r.spliced.loss.toFixed(6)}, tokens only ${r.tokensOnly.loss.toFixed(6)}`);
});
