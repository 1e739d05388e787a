// cuBLASLt and NCCL are opened at run time, so one build runs on hosts with and without them. The
// search (LONGCTX_CUDA_LIBRARY_PATH first, then the loader's path) runs once per process, so each
// case runs in a fresh node process with its own environment. None of it needs a GPU.
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { CudaBackendInfo } from '../../worker-native/cuda.js';
import { addonPath } from '../../worker-native/native.js';
import { api } from './gpu.js';

const run = promisify(execFile);

/** cudaBackendInfo() of a fresh process with LONGCTX_CUDA_LIBRARY_PATH set to `libraryPath`. */
async function infoWith(libraryPath: string): Promise<CudaBackendInfo> {
  const script = `process.stdout.write(JSON.stringify(require(${JSON.stringify(addonPath)}).cudaBackendInfo()))`;
  const { stdout } = await run(process.execPath, ['-e', script], {
    env: { ...process.env, LONGCTX_CUDA_LIBRARY_PATH: libraryPath },
  });
  return JSON.parse(stdout) as CudaBackendInfo;
}

const cudaBuild = api ? test : test.skip;
let root = '';
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'longctx-libraries-'));
});
test.after.always(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

cudaBuild(
  'a library that is not there is reported with every place looked, and jobs use gloo staging',
  async (t) => {
    const empty = join(root, 'empty');
    const info = await infoWith(`${empty}:/nonexistent-longctx`);
    const { nccl, cublasLt } = info.libraries;
    if (nccl.found) {
      // This host has NCCL on the loader's path: the folders were still tried first.
      t.log(`NCCL is installed here (${nccl.path}); the not-found message cannot be checked`);
      t.true(info.collectives.startsWith('NCCL '));
    } else {
      t.false(nccl.usable);
      t.false(info.nccl);
      for (const place of [`${empty}/libnccl.so.2`, '/nonexistent-longctx/libnccl.so.2'])
        t.true(nccl.error.includes(place), `${nccl.error} names ${place}`);
      t.regex(nccl.error, /LONGCTX_CUDA_LIBRARY_PATH=/);
      t.true(info.collectives.startsWith('NCCL not found: using gloo host staging ('), info.collectives);
    }
    if (!cublasLt.found) {
      t.false(info.cublasLt);
      t.regex(cublasLt.error, /libcublasLt\.so\.13.*libcublasLt\.so\.12/);
    }
  },
);

cudaBuild(
  'a file of the right name that lacks the functions is found but not used, naming what it lacks',
  async (t) => {
    // Any real shared library that is not NCCL: zlib, which every Node host has.
    const impostor = join(root, 'impostor');
    await run('mkdir', ['-p', impostor]);
    const { stdout } = await run('ldconfig', ['-p']);
    const zlib = /\s(\/\S*libz\.so\.1)$/m.exec(stdout)?.[1];
    if (!zlib) return t.pass('no libz.so.1 in the loader cache to stand in');
    await copyFile(zlib, join(impostor, 'libnccl.so.2'));
    await copyFile(zlib, join(impostor, 'libcublasLt.so.13'));
    const info = await infoWith(impostor);
    const { nccl, cublasLt } = info.libraries;
    t.true(nccl.found);
    t.false(nccl.usable);
    t.is(nccl.path, join(impostor, 'libnccl.so.2'));
    t.regex(nccl.error, /libnccl\.so\.2 lacks .*ncclCommInitRank.*ncclSend/);
    t.true(info.collectives.startsWith('NCCL not usable: using gloo host staging ('), info.collectives);
    t.false(info.nccl);
    t.true(cublasLt.found);
    t.false(cublasLt.usable);
    t.regex(cublasLt.error, /libcublasLt\.so\.13 lacks .*cublasLtMatmul/);
    t.false(info.cublasLt);
  },
);
