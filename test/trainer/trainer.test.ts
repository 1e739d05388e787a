// The trainer on one rank: activation checkpointing and offload change memory, never a bit of the
// results; the device peak falls as each policy and mode claims; budgets are enforced with the
// arena's error; a tiny model learns; bad calls fail clearly.
import test from 'ava';

import { native } from '../../worker-native/native.js';
import {
  createTrainer,
  type ActivationCheckpointing,
  type Offload,
  type Trainer,
  type TrainerOptions,
} from '../../worker-native/trainer.js';
import {
  bitwiseEqual,
  rankTokens,
  repeatedSequence,
  sequence,
  tinyConfig,
  trainerOptions,
  type Sequence,
} from './fixtures.js';

native().setBlasThreads(1);

const SEQ = 128;
const VOCAB = 64;
const roundUp64 = (bytes: number) => Math.ceil(bytes / 64) * 64;

interface Run {
  lossSums: number[];
  gradNorms: number[];
  params: Float32Array;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** Device and host peaks over the training steps (after creation). */
  devicePeak: number;
  hostPeak: number;
  /** Device bytes held between steps (parameters, gradients, moments as the mode places them). */
  deviceResident: number;
  trainer: Trainer;
}

/** `steps` optimizer steps of `accumulation` micro-batches each, on one rank. */
async function train(options: TrainerOptions, steps = 3, accumulation = 2): Promise<Run> {
  const trainer = await createTrainer(null, options);
  const deviceResident = trainer.memory().deviceCurrent;
  trainer.resetPeak();
  const lossSums: number[] = [];
  const gradNorms: number[] = [];
  for (let s = 0; s < steps; s++) {
    for (let m = 0; m < accumulation; m++) {
      const b = rankTokens(sequence(1, s * accumulation + m, SEQ, VOCAB), 1, 0);
      lossSums.push((await trainer.accumulate(b.ids, b.positions, b.labels, accumulation)).lossSum);
    }
    gradNorms.push((await trainer.step(1e-2)).gradNorm);
  }
  const memory = trainer.memory();
  return {
    lossSums,
    gradNorms,
    ...trainer.snapshot(),
    devicePeak: memory.devicePeak,
    hostPeak: memory.hostPeak,
    deviceResident,
    trainer,
  };
}

function sameBits(t: import('ava').ExecutionContext, got: Run, want: Run, what: string): void {
  t.deepEqual(got.lossSums, want.lossSums, `${what}: losses`);
  t.deepEqual(got.gradNorms, want.gradNorms, `${what}: gradient norms`);
  t.true(bitwiseEqual(got.params, want.params), `${what}: parameters differ`);
  t.true(bitwiseEqual(got.expAvg, want.expAvg), `${what}: exp_avg differs`);
  t.true(bitwiseEqual(got.expAvgSq, want.expAvgSq), `${what}: exp_avg_sq differs`);
}

test('every activation-checkpointing policy gives bitwise the same training; the device peak falls as claimed', async (t) => {
  // 4 layers so that every-2 (layers 1 and 3 keep everything) sits strictly between none and full.
  const config = tinyConfig(4);
  const policies: ActivationCheckpointing[] = ['none', 'every-2', 'selective', 'full'];
  const runs = new Map<ActivationCheckpointing, Run>();
  for (const policy of policies) {
    runs.set(policy, await train(trainerOptions(config, { activationCheckpointing: policy })));
  }
  const none = runs.get('none')!;
  for (const policy of policies) {
    const run = runs.get(policy)!;
    sameBits(t, run, none, policy);
    t.is(run.deviceResident, none.deviceResident);
    t.log(`${policy}: device peak ${run.devicePeak} bytes`);
    run.trainer.close();
  }
  const peak = (p: ActivationCheckpointing) => runs.get(p)!.devicePeak;
  t.true(peak('none') > peak('every-2'), 'every-2 keeps half the layers');
  t.true(peak('every-2') > peak('full'), 'full keeps no layer');
  t.true(peak('none') > peak('selective') && peak('selective') > peak('full'), 'selective keeps attn + lse');
  // What full saves over none is at least three layers' worth of saved activations (the fourth is
  // recomputed, so alive once anyway), each at least q, k, v, attn, mid, norm1/2, gate, up, act.
  const T = SEQ;
  const layerFloats = T * (32 * 4 + 16 * 2 + 32 + 64 * 3);
  t.true(peak('none') - peak('full') >= 3 * 4 * layerFloats, `none - full = ${peak('none') - peak('full')}`);
});

test('every offload mode gives bitwise the same training; the device peak falls by what moved to the host', async (t) => {
  const config = tinyConfig(2);
  const modes: Offload[] = ['none', 'optimizer', 'params+optimizer'];
  const runs = new Map<Offload, Run>();
  for (const offload of modes) runs.set(offload, await train(trainerOptions(config, { offload })));
  const none = runs.get('none')!;
  for (const offload of modes) {
    const run = runs.get(offload)!;
    sameBits(t, run, none, offload);
    t.log(`${offload}: device peak ${run.devicePeak}, host peak ${run.hostPeak} bytes`);
  }
  const P = none.trainer.numParameters;
  const floats = (n: number) => roundUp64(4 * n);
  const optimizer = runs.get('optimizer')!;
  const both = runs.get('params+optimizer')!;
  // Between steps the device holds exactly what the mode leaves there.
  t.is(none.deviceResident, 4 * floats(P));
  t.is(optimizer.deviceResident, 2 * floats(P));
  t.is(both.deviceResident, 0);
  // The moments moved: the peak falls by them.
  t.true(none.devicePeak - optimizer.devicePeak >= 2 * floats(P));
  // Parameters, gradients and moments moved; the device gains the staging copy of one unit of
  // weights (a layer, or the LM head with the final norm).
  const views = none.trainer.parameterViews();
  const layer0 = views.filter((v) => v.name.startsWith('model.layers.0.')).reduce((n, v) => n + v.numel, 0);
  const head = 64 * 32 + 32;
  const staging = floats(Math.max(layer0, head)) + floats(32);
  t.true(
    none.devicePeak - both.devicePeak >= 4 * floats(P) - staging,
    `device peak fell by ${none.devicePeak - both.devicePeak}, moved ${4 * floats(P)}, staging ${staging}`,
  );
  // The host holds what moved (plus transient copies of one unit).
  t.true(optimizer.hostPeak >= 4 * floats(P)); // moments + the shard's parameter and gradient copies
  t.true(both.hostPeak >= 4 * floats(P));
  t.is(none.hostPeak, 0);
  for (const run of runs.values()) run.trainer.close();
});

test('gradient accumulation: two micro-batches of one step equal one pass over both, to rounding', async (t) => {
  // Not bitwise (each micro-batch's mean is scaled by 1/2 and summed), but the same training.
  const config = tinyConfig(2);
  const options = trainerOptions(config, { optimizer: { ...trainerOptions(config).optimizer, gradClip: 0 } });
  const a = await createTrainer(null, options);
  const b = await createTrainer(null, options);
  const x = rankTokens(sequence(2, 0, SEQ, VOCAB), 1, 0);
  for (let m = 0; m < 2; m++) await a.accumulate(x.ids, x.positions, x.labels, 2);
  await b.accumulate(x.ids, x.positions, x.labels, 1);
  const ga = a.gradients();
  const gb = b.gradients();
  let worst = 0;
  for (let i = 0; i < ga.length; i++) worst = Math.max(worst, Math.abs(ga[i]! - gb[i]!));
  t.true(worst < 1e-6, `max difference ${worst}`);
  const [sa, sb] = [await a.step(1e-3), await b.step(1e-3)];
  t.true(Math.abs(sa.gradNorm - sb.gradNorm) < 1e-6 * sb.gradNorm);
  t.true(
    a.gradients().every((g) => g === 0),
    'gradients are zero after a step',
  );
  a.close();
  b.close();
});

test('evaluate gives the loss accumulate computes, and changes nothing', async (t) => {
  const trainer = await createTrainer(null, trainerOptions(tinyConfig(2)));
  const x = rankTokens(sequence(3, 0, SEQ, VOCAB), 1, 0);
  const before = trainer.snapshot().params;
  const evaluated = await trainer.evaluate(x.ids, x.positions, x.labels);
  t.true(trainer.gradients().every((g) => g === 0));
  const accumulated = await trainer.accumulate(x.ids, x.positions, x.labels, 1);
  t.is(evaluated.lossSum, accumulated.lossSum);
  t.is(evaluated.tokens, accumulated.tokens);
  t.is(evaluated.globalTokens, evaluated.tokens);
  t.is(accumulated.tokens, x.labels.filter((l) => l !== -100).length);
  t.is(accumulated.loss, accumulated.lossSum / accumulated.tokens);
  t.true(bitwiseEqual(trainer.snapshot().params, before));
  trainer.close();
});

test('a tiny model trained on a repeated short sequence clearly lowers its loss', async (t) => {
  const config = { ...tinyConfig(2), vocab_size: 259 };
  const trainer = await createTrainer(
    null,
    trainerOptions(config, { initializerRange: 0.02, activationCheckpointing: 'selective' }),
  );
  const seq: Sequence = repeatedSequence([17, 200, 3, 42, 99, 150, 7, 258, 64, 12, 31], 64);
  const x = rankTokens(seq, 1, 0);
  const losses: number[] = [];
  for (let s = 0; s < 30; s++) {
    losses.push((await trainer.accumulate(x.ids, x.positions, x.labels, 1)).loss);
    await trainer.step(1e-2);
  }
  t.log(`loss ${losses[0]!.toFixed(3)} → ${losses.at(-1)!.toFixed(3)}`);
  t.true(Math.abs(losses[0]! - Math.log(259)) < 0.1, 'starts near ln(vocab) from the HF init');
  // The pattern is deterministic after its first token: the loss can approach 0, and does.
  t.true(losses.at(-1)! < 0.1, `loss ${losses[0]} → ${losses.at(-1)}`);
  trainer.close();
});

test('parameters, gradients and moments past the device budget fail with the arena error', async (t) => {
  const config = tinyConfig(2);
  const error = await t.throwsAsync(
    createTrainer(null, trainerOptions(config, { deviceBudgetBytes: 200_000 })),
  );
  t.regex(
    error.message,
    /^device cpu:0 out of memory: requested .* in use \(\d+ bytes requested, \d+ of 200000 bytes in use\)/,
  );
  t.is((error as Error & { code?: string }).code, 'ERR_LONGCTX_OUT_OF_MEMORY');
  // The same budget is enough once everything lives on the host.
  const offloaded = await createTrainer(
    null,
    trainerOptions(config, { deviceBudgetBytes: 200_000, offload: 'params+optimizer', device: 'cpu:7' }),
  );
  // ... but not for the activations of a long sequence: the step fails, the trainer stays usable.
  const long = rankTokens(sequence(4, 0, 512, VOCAB), 1, 0);
  const oom = await t.throwsAsync(offloaded.accumulate(long.ids, long.positions, long.labels, 1));
  t.regex(oom.message, /^device cpu:7 out of memory/);
  t.is(offloaded.memory().deviceCurrent, 0, 'everything the failed step took was given back');
  t.true(
    offloaded.gradients().every((g) => g === 0),
    'a step that failed in its forward adds nothing',
  );
  const short = rankTokens(sequence(4, 0, 8, VOCAB), 1, 0);
  await offloaded.accumulate(short.ids, short.positions, short.labels, 1);
  t.true(offloaded.memory().devicePeak <= 200_000);
  // The host budget is enforced the same way.
  const host = await t.throwsAsync(
    createTrainer(null, trainerOptions(config, { offload: 'optimizer', hostBudgetBytes: 1000 })),
  );
  t.regex(host.message, /^host out of memory/);
  offloaded.close();
});

test('snapshot and load round-trip the state; wrong lengths are refused naming the numbers', async (t) => {
  const config = tinyConfig(2);
  const a = (await train(trainerOptions(config), 2, 1)).trainer;
  const state = a.snapshot();
  t.is(state.adamStep, 2);
  t.deepEqual(a.shard, { begin: 0, end: a.numParameters });
  t.is(state.expAvg.length, a.numParameters);
  const b = await createTrainer(null, trainerOptions(config, { seed: 99 }));
  b.load(state);
  const x = rankTokens(sequence(5, 0, SEQ, VOCAB), 1, 0);
  for (const trainer of [a, b]) {
    await trainer.accumulate(x.ids, x.positions, x.labels, 1);
    await trainer.step(1e-2);
  }
  const [sa, sb] = [a.snapshot(), b.snapshot()];
  t.true(bitwiseEqual(sa.params, sb.params) && bitwiseEqual(sa.expAvg, sb.expAvg) && sa.adamStep === 3);
  t.is(sb.adamStep, 3);
  t.throws(() => b.load({ params: new Float32Array(5) }), {
    message: `state.params has 5 values, the model has ${a.numParameters} parameters`,
  });
  t.throws(() => b.load({ expAvgSq: new Float32Array(3) }), {
    message: new RegExp(
      `state.expAvgSq has 3 values, this rank's optimizer shard \\[0, ${a.numParameters}\\)`,
    ),
  });
  t.throws(() => b.load({ adamStep: -1 }), { message: /state.adamStep must be a non-negative integer/ });
  // A refused load changes nothing, not even the fields that were fine.
  t.throws(() => b.load({ adamStep: 7, expAvg: new Float32Array(1) }));
  t.is(b.snapshot().adamStep, 3);
  a.close();
  b.close();
});

test('snapshot(into) copies into the given arrays, the same values as a fresh snapshot', async (t) => {
  const config = tinyConfig(2);
  const trainer = (await train(trainerOptions(config), 1, 1)).trainer;
  const old = trainer.snapshot();
  const oldParams = old.params.slice();
  const x = rankTokens(sequence(7, 0, SEQ, VOCAB), 1, 0);
  await trainer.accumulate(x.ids, x.positions, x.labels, 1);
  await trainer.step(1e-2);
  const fresh = trainer.snapshot();
  const reused = trainer.snapshot(old);
  t.is(reused.params, old.params, 'the same arrays, no new allocation');
  t.is(reused.expAvg, old.expAvg);
  t.is(reused.expAvgSq, old.expAvgSq);
  t.false(bitwiseEqual(reused.params, oldParams), 'the step changed the parameters');
  t.true(bitwiseEqual(reused.params, fresh.params));
  t.true(bitwiseEqual(reused.expAvg, fresh.expAvg) && bitwiseEqual(reused.expAvgSq, fresh.expAvgSq));
  t.is(reused.adamStep, 2);
  // A wrong `into` is refused naming the field, before anything is written.
  const before = old.params.slice();
  t.throws(() => trainer.snapshot({ ...old, expAvgSq: new Float32Array(3) }), {
    message: `into.expAvgSq has 3 values, the snapshot needs ${trainer.numParameters}`,
  });
  t.throws(() => trainer.snapshot({ ...old, expAvg: [] as unknown as Float32Array }), {
    message: /into.expAvg must be a Float32Array/,
  });
  t.true(bitwiseEqual(old.params, before), 'a refused snapshot(into) wrote nothing');
  trainer.close();
});

test('startSnapshot copies on a worker thread while the next micro-batch runs; step waits for it', async (t) => {
  const config = tinyConfig(2);
  const [a, b] = [
    (await train(trainerOptions(config), 2, 1)).trainer,
    (await train(trainerOptions(config), 2, 1)).trainer,
  ];
  const x = rankTokens(sequence(8, 0, SEQ, VOCAB), 1, 0);
  // a: the copy and the next accumulate overlap. b: snapshot, then accumulate, one after the other.
  const copying = a.startSnapshot();
  const overlapped = a.accumulate(x.ids, x.positions, x.labels, 1);
  // Whether or not the copy has finished on its thread, it has not been awaited: still busy.
  await t.throwsAsync(a.step(1e-2), {
    message: /Trainer.step: busy — accumulate\(\) is still running/,
  });
  const [snapshot, micro] = await Promise.all([copying, overlapped]);
  const expected = b.snapshot();
  const expectedMicro = await b.accumulate(x.ids, x.positions, x.labels, 1);
  t.true(bitwiseEqual(snapshot.params, expected.params), 'the copy is the state before the step');
  t.true(
    bitwiseEqual(snapshot.expAvg, expected.expAvg) && bitwiseEqual(snapshot.expAvgSq, expected.expAvgSq),
  );
  t.is(snapshot.adamStep, 2);
  t.is(micro.lossSum, expectedMicro.lossSum, 'the micro-batch is unaffected by the copy');
  for (const trainer of [a, b]) await trainer.step(1e-2);
  t.true(bitwiseEqual(a.snapshot().params, b.snapshot().params));

  // Into an earlier snapshot's arrays; what changes the copied state waits, what does not may run.
  const reusing = a.startSnapshot(snapshot);
  t.throws(() => a.snapshot(), { message: /Trainer.snapshot: busy — startSnapshot\(\) is still copying/ });
  t.throws(() => a.load({ adamStep: 1 }), {
    message: /Trainer.load: busy — startSnapshot\(\) is still copying/,
  });
  t.throws(() => a.close(), { message: /Trainer.close: busy — startSnapshot\(\) is still copying/ });
  await t.throwsAsync(a.step(1e-2), { message: /Trainer.step: busy — startSnapshot\(\) is still copying/ });
  await t.throwsAsync(a.startSnapshot(), { message: /Trainer.startSnapshot: busy/ });
  t.is(a.memory().deviceBudget, trainerOptions(config).deviceBudgetBytes);
  t.is(a.gradients().length, a.numParameters);
  const reused = await reusing;
  t.is(reused.params, snapshot.params, 'the same arrays');
  t.true(bitwiseEqual(reused.params, b.snapshot().params));
  t.is(reused.adamStep, 3);
  // A bad argument throws at once, as for every trainer method; busy rejects the Promise.
  t.throws(() => void a.startSnapshot({ ...snapshot, params: new Float32Array(2) }), {
    message: `into.params has 2 values, the snapshot needs ${a.numParameters}`,
  });
  a.close();
  b.close();
});

test('bad options and arguments fail naming the field; a second call while one runs is refused as busy', async (t) => {
  const config = tinyConfig(2);
  const addon = native();
  t.throws(
    () =>
      void addon.createTrainer(
        null,
        trainerOptions(config, { activationCheckpointing: 'every-0' as 'full' }),
      ),
    {
      message:
        /options.activationCheckpointing must be 'none', 'full', 'selective' or 'every-K'.*got 'every-0'/,
    },
  );
  t.throws(() => void addon.createTrainer(null, trainerOptions(config, { offload: 'disk' as 'none' })), {
    message: /options.offload must be 'none', 'optimizer' or 'params\+optimizer', got 'disk'/,
  });
  t.throws(
    () =>
      void addon.createTrainer(
        null,
        trainerOptions(config, { optimizer: { ...trainerOptions(config).optimizer, beta2: 1 } }),
      ),
    { message: /options.optimizer.beta2 must be in \[0, 1\), got 1/ },
  );
  t.throws(() => void addon.createTrainer(null, trainerOptions({ ...config, num_attention_heads: 5 })), {
    message: /config.hidden_size 32 is not divisible by num_attention_heads 5/,
  });
  t.throws(() => void addon.createTrainer(null, { ...trainerOptions(config), seed: -1 }), {
    message: /options.seed must be a non-negative integer/,
  });

  const trainer = await createTrainer(null, trainerOptions(config));
  const x = rankTokens(sequence(6, 0, 32, VOCAB), 1, 0);
  t.throws(() => void trainer.accumulate(x.ids, x.positions, x.labels, 0), {
    message: /accumulationSteps\) must be an integer >= 1, got 0/,
  });
  t.throws(() => void trainer.accumulate(x.ids, x.positions.subarray(1), x.labels, 1), {
    message: 'positions has 31 elements, ids has 32',
  });
  await t.throwsAsync(
    trainer.accumulate(
      Int32Array.from(x.ids, () => 64),
      x.positions,
      x.labels,
      1,
    ),
    {
      message: /ids.*64/,
    },
  );
  await t.throwsAsync(trainer.step(-1), { message: /lr must be a finite number >= 0, got -1/ });

  const running = trainer.accumulate(x.ids, x.positions, x.labels, 1);
  await t.throwsAsync(trainer.step(1e-3), {
    message: /Trainer.step: busy — accumulate\(\) is still running/,
  });
  t.throws(() => trainer.snapshot(), { message: /Trainer.snapshot: busy/ });
  t.throws(() => trainer.close(), { message: /busy/ });
  await running;
  await trainer.reduceGradients();
  await t.throwsAsync(trainer.accumulate(x.ids, x.positions, x.labels, 1), {
    message: /already summed across ranks \(reduceGradients\); call step\(\) first/,
  });
  await trainer.step(1e-3);
  trainer.close();
  trainer.close();
  t.throws(() => trainer.memory(), { message: 'Trainer.memory: the trainer is closed' });
  await t.throwsAsync(trainer.step(1e-3), { message: 'Trainer.step: the trainer is closed' });
});
