// Moving data for offload and communication: the prefetch queue (pinned host memory, a copy
// stream, events) and host-staged collectives. Needs a GPU.
import { gpuTest } from './gpu.js';
import { random } from './reference.js';

gpuTest('the prefetch queue streams every layer through its slots intact and in order', async (t, cuda) => {
  const rand = random(21);
  const layerCount = 9,
    layerLen = 1 << 20; // 4 MiB per layer: copies long enough to overlap
  const layers = Float32Array.from({ length: layerCount * layerLen }, () => rand());
  for (const slots of [1, 2, 3]) {
    const { out } = await cuda.cudaPrefetchRoundTrip(layers, layerCount, slots);
    let mismatches = 0;
    for (let i = 0; i < layers.length; i++) if (out[i] !== 2 * layers[i]!) mismatches++;
    t.is(mismatches, 0, `${slots} slot(s): ${mismatches} values differ (a slot overwritten while in use?)`);
  }
});

gpuTest('the prefetch queue rejects layers that do not divide evenly', async (t, cuda) => {
  await t.throwsAsync(cuda.cudaPrefetchRoundTrip(new Float32Array(10), 3, 2), {
    message: 'layers has 10 elements, not a multiple of 3 layers',
  });
});

gpuTest('host staging carries device data through pinned memory and back', async (t, cuda) => {
  const rand = random(22);
  const x = Float32Array.from({ length: 300_001 }, () => rand());
  const { allReduced, received } = await cuda.cudaHostStagingRoundTrip(x);
  // One rank: the all-reduce is the identity and the send/recv goes to itself.
  t.deepEqual(Buffer.from(allReduced.buffer), Buffer.from(x.buffer));
  t.deepEqual(Buffer.from(received.buffer), Buffer.from(x.buffer));
});
