#!/usr/bin/env bash
# `make gpu-check`: on a GPU host, every GPU test (test/cuda) and the GPU benchmarks, then a
# summary; sized to finish in under 8 minutes on one GPU. Run from a built checkout (make build with
# nvcc present), or on a GPU host without Node.js through the bundle of ../shared/gpu/pack:
#   bash .gpu/run bash -s < scripts/gpu-check.sh
# (the bundle holds dist/, the addon and node_modules; the script reads nothing else.)
#
# NCCL and cuBLAS: a GPU host with PyTorch has them inside its python packages (nvidia-nccl-cu*,
# nvidia-cublas-cu*). Their lib folders go into LONGCTX_CUDA_LIBRARY_PATH and LD_LIBRARY_PATH, so
# an addon built against them finds them at load time.
#
# Exit status: 0 when every GPU test passed (none skipped) and every benchmark ran; 1 otherwise.
set -uo pipefail

TEST_SECONDS=${GPU_CHECK_TEST_SECONDS:-330}
BENCH_SECONDS=${GPU_CHECK_BENCH_SECONDS:-120}
started=$(date +%s)
log=$(mktemp -d /tmp/gpu-check.XXXXXX)

nvidia_libs=$(python3 - 2>/dev/null <<'PY'
import importlib, os
found = []
for name in ("nvidia.nccl", "nvidia.cublas", "nvidia.cuda_runtime", "nvidia.cuda_nvrtc"):
    try:
        module = importlib.import_module(name)
    except Exception:
        continue
    for root in getattr(module, "__path__", []):
        lib = os.path.join(root, "lib")
        if os.path.isdir(lib) and lib not in found:
            found.append(lib)
print(":".join(found))
PY
)
export LONGCTX_CUDA_LIBRARY_PATH=${nvidia_libs:-}
if [ -n "${nvidia_libs:-}" ]; then
  export LD_LIBRARY_PATH=$nvidia_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

echo "== gpu-check $(date -u +%FT%TZ)"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: nvidia-smi is missing or lists no device; gpu-check needs a GPU host" >&2
  exit 1
fi
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | sed 's/^/   gpu /'
echo "   NCCL/cuBLAS from python: ${LONGCTX_CUDA_LIBRARY_PATH:-none found}"
# The multi-rank tests meet through Redis (gloo's rendezvous), as every rank gang does.
command -v redis-server >/dev/null || echo "   warning: no redis-server on PATH: the tests of several ranks on one GPU will fail"
node -e "import('./dist/worker-native/native.js').then(m => { const i = m.native().buildInfo();
  console.log('   addon: cuda ' + i.cuda + ', devices ' + i.cudaDevices + ' ' + JSON.stringify(i.cudaDeviceNames));
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
  echo "== bench $bench (limit ${BENCH_SECONDS} s)"
  if timeout --kill-after=10 "$BENCH_SECONDS" node dist/bench/run.js "$bench" --json >"$log/$bench.jsonl" 2>"$log/$bench.err"; then
    sed 's/^/   /' "$log/$bench.jsonl"
    grep -q '"skipped":true' "$log/$bench.jsonl" && bench_failed=$((bench_failed + 1))
  else
    bench_failed=$((bench_failed + 1))
    tail -5 "$log/$bench.err" | sed 's/^/   error: /'
  fi
done

elapsed=$(($(date +%s) - started))
echo "== summary: tests ${passed} passed, ${failed} failed, ${skipped} skipped (${gpu_skipped} of them GPU tests); benchmarks failed or skipped: ${bench_failed}; ${elapsed} s (logs in $log)"
if [ "$test_status" != 0 ] || [ "$failed" != 0 ] || [ "$gpu_skipped" != 0 ] || [ "$bench_failed" != 0 ]; then
  exit 1
fi
