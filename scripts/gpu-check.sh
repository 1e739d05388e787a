#!/usr/bin/env bash
# `make gpu-check`: on a GPU host, every GPU test (test/cuda) and the GPU benchmarks, then a
# summary; sized to finish in under 9 minutes on one GPU (limits below, each overridable). Run from
# a built checkout (make build with nvcc present), or on a GPU host without Node.js through the
# bundle of ../shared/gpu/pack:
#   bash .gpu/run bash -s < scripts/gpu-check.sh
# (the bundle holds dist/, the addon and node_modules; add bench/peers for train-cuda's PyTorch
# peer, as scripts/gpu-host.sh does.)
#
# NCCL and cuBLAS are opened by the addon at run time. A GPU host with PyTorch often has them only
# inside its python packages (nvidia-nccl-*, nvidia-cublas-*; under nvidia/<pkg>/lib or
# nvidia/cu13/lib), and cuBLAS also in the CUDA toolkit: the folders that hold libnccl.so.2 or
# libcublasLt.so.1[23] go into LONGCTX_CUDA_LIBRARY_PATH (not LD_LIBRARY_PATH: the addon's own
# search is what is under test). LONGCTX_PYTHON is the python with torch, for train-cuda's peer.
#
# Exit status: 0 when every GPU test passed (none skipped) and every benchmark ran; 1 otherwise.
set -uo pipefail

TEST_SECONDS=${GPU_CHECK_TEST_SECONDS:-240}
ATTENTION_SECONDS=${GPU_CHECK_ATTENTION_SECONDS:-60}
TRAIN_SECONDS=${GPU_CHECK_TRAIN_SECONDS:-210}
started=$(date +%s)
log=$(mktemp -d /tmp/gpu-check.XXXXXX)

python=${LONGCTX_PYTHON:-}
for candidate in python3 /opt/torch/.venv/bin/python3; do
  [ -n "$python" ] && break
  "$candidate" -c 'import torch' >/dev/null 2>&1 && python=$candidate
done
export LONGCTX_PYTHON=${python:-python3}
site=$("$LONGCTX_PYTHON" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
folders=$(
  {
    [ -n "$site" ] && [ -d "$site/nvidia" ] && find "$site/nvidia" -name 'libnccl.so.2' -o -name 'libcublasLt.so.1[23]'
    find /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib -maxdepth 1 -name 'libcublasLt.so.1[23]' 2>/dev/null
  } | xargs -r -n1 dirname | awk '!seen[$0]++' | paste -sd: -
)
export LONGCTX_CUDA_LIBRARY_PATH=${folders:-}

echo "== gpu-check $(date -u +%FT%TZ)"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: nvidia-smi is missing or lists no device; gpu-check needs a GPU host" >&2
  exit 1
fi
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | sed 's/^/   gpu /'
echo "   LONGCTX_CUDA_LIBRARY_PATH=${LONGCTX_CUDA_LIBRARY_PATH:-(none found)}; LONGCTX_PYTHON=$LONGCTX_PYTHON"
# The multi-rank tests meet through Redis (gloo's rendezvous), as every rank gang does.
command -v redis-server >/dev/null || echo "   warning: no redis-server on PATH: the tests of several ranks on one GPU will fail"
node -e "import('./dist/worker-native/native.js').then(m => { const i = m.native().buildInfo();
  console.log('   addon: cuda ' + i.cuda + ', devices ' + i.cudaDevices + ' ' + JSON.stringify(i.cudaDeviceNames));
  const c = m.native().cudaBackendInfo?.();
  if (c) console.log('   cuBLASLt: ' + (c.libraries.cublasLt.usable ? c.libraries.cublasLt.path : c.libraries.cublasLt.error) + '\n   collectives: ' + c.collectives);
  if (!i.cuda || i.cudaDevices === 0) process.exit(1); })" || {
  echo "the addon was built without CUDA or sees no device" >&2
  exit 1
}

# Tests: ava's TAP report, one line per test.
echo "== GPU tests (test/cuda, limit ${TEST_SECONDS} s)"
timeout --kill-after=10 "$TEST_SECONDS" node node_modules/ava/entrypoints/cli.mjs --tap --timeout=4m \
  dist/test/cuda/*.test.js >"$log/tests.tap" 2>"$log/tests.err"
test_status=$?
passed=$(grep -c '^ok ' "$log/tests.tap" | tr -d ' ')
skipped=$(grep -c '^ok .*# SKIP' "$log/tests.tap" | tr -d ' ')
# A test that only runs without a GPU skips here by design; a GPU test skipped here is a failure.
gpu_skipped=$(grep -c '^ok .*no GPU.*# SKIP' "$log/tests.tap" | tr -d ' ')
failed=$(grep -c '^not ok ' "$log/tests.tap" | tr -d ' ')
passed=$((passed - skipped))
grep -E '^(not )?ok ' "$log/tests.tap" | sed 's/^/   /'
[ "$test_status" = 124 ] && echo "   (stopped after ${TEST_SECONDS} s)"
[ -s "$log/tests.err" ] && tail -20 "$log/tests.err" | sed 's/^/   stderr: /'

# Benchmarks: JSON lines, one record each.
bench_failed=0
for bench in attention-cuda train-cuda; do
  limit=$ATTENTION_SECONDS
  args=()
  [ "$bench" = train-cuda ] && limit=$TRAIN_SECONDS && args=(--steps 2)
  echo "== bench $bench ${args[*]} (limit ${limit} s)"
  if timeout --kill-after=10 "$limit" node dist/bench/run.js "$bench" --json "${args[@]}" >"$log/$bench.jsonl" 2>"$log/$bench.err"; then
    sed 's/^/   /' "$log/$bench.jsonl"
    grep -q '"skipped":true' "$log/$bench.jsonl" && bench_failed=$((bench_failed + 1))
  else
    bench_failed=$((bench_failed + 1))
    sed 's/^/   /' "$log/$bench.jsonl"  # what it measured before it stopped
    tail -5 "$log/$bench.err" | sed 's/^/   error: /'
  fi
done

elapsed=$(($(date +%s) - started))
echo "== summary: tests ${passed} passed, ${failed} failed, ${skipped} skipped (${gpu_skipped} of them GPU tests); benchmarks failed or skipped: ${bench_failed}; ${elapsed} s (logs in $log)"
if [ "$test_status" != 0 ] || [ "$failed" != 0 ] || [ "$gpu_skipped" != 0 ] || [ "$bench_failed" != 0 ]; then
  exit 1
fi
