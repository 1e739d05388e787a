// Device collectives on one rank (kernels/cuda/device_collectives.h): an all-reduce and a ring
// step on device buffers, through gloo host staging and, where the host has it, NCCL. A world of
// one sends to itself. Needs a GPU (and redis-server, for the communicator's rendezvous).
import test from 'ava';

import '../../worker-native/comm.js';
import { native } from '../../worker-native/native.js';
import { useRedis } from '../helpers/redis.js';
import { api, gpuTest } from './gpu.js';

const redis = useRedis(test);
const x = Float32Array.from({ length: 3000 }, (_, i) => Math.sin(i) * 100);

async function roundTrip(choice: 'auto' | 'nccl' | 'staged', prefix: string) {
  const comm = await native().createCommunicator({
    rank: 0,
    size: 1,
    redisPort: redis().port,
    prefix,
    timeoutMs: 20_000,
  });
  try {
    return await api!.cudaCollectivesRoundTrip(comm, choice, x);
  } finally {
    await comm.close();
  }
}

gpuTest('gloo host staging: all-reduce and a ring step to itself keep the values exactly', async (t) => {
  const out = await roundTrip('staged', `longctx/collectives-staged-${process.pid}/1`);
  t.is(out.description, 'gloo host staging');
  t.deepEqual(Array.from(out.allReduced), Array.from(x));
  t.deepEqual(Array.from(out.received), Array.from(x));
});

const withNccl = api?.cudaBackendInfo().nccl
  ? gpuTest
  : (title: string) => test.skip(`${title} (skipped: NCCL not usable here)`, () => {});
withNccl(
  'NCCL with one rank: unique id through Redis, all-reduce and send/recv to itself on the device',
  async (t) => {
    const out = await roundTrip('nccl', `longctx/collectives-nccl-${process.pid}/1`);
    t.log(out.description);
    t.regex(out.description, /^NCCL \d+\.\d+\.\d+ \(/);
    t.deepEqual(Array.from(out.allReduced), Array.from(x));
    t.deepEqual(Array.from(out.received), Array.from(x));
    // 'auto' takes NCCL here too: one rank has its GPU to itself.
    const auto = await roundTrip('auto', `longctx/collectives-auto-${process.pid}/1`);
    t.is(auto.description, out.description);
    t.is(auto.note, '');
  },
);

gpuTest(
  "'nccl' where NCCL is missing is an error that says where it looked; 'auto' falls back",
  async (t) => {
    if (api!.cudaBackendInfo().nccl) {
      t.pass('NCCL is usable here: the fallback is tested on hosts without it');
      return;
    }
    await t.throwsAsync(roundTrip('nccl', `longctx/collectives-missing-${process.pid}/1`), {
      message: /^collectives 'nccl' was asked for: NCCL not (found|usable) \(/,
    });
    const auto = await roundTrip('auto', `longctx/collectives-fallback-${process.pid}/1`);
    t.is(auto.description, 'gloo host staging');
    t.regex(auto.note, /^NCCL not (found|usable): using gloo host staging \(/);
  },
);
