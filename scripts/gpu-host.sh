#!/usr/bin/env bash
# On a GPU host without Node.js, from the repository root, with .gpu (../shared/gpu/pack) and
# .gpu-extra (scripts/bundle-redis.sh) carried: redis-server from the bundle, `make gpu-check`'s
# script through the node bundle, then the GPU demo. Logs go to $OUT when it is set.
set -u
out=${OUT:-$(mktemp -d)}
tar -xJf .gpu-extra/redis-bundle.tar.xz -C /tmp && export PATH=/tmp/.gpu-redis/bin:$PATH
cp scripts/gpu-check.sh /tmp/gpu-check.sh
# train-cuda's PyTorch peer is a python file beside the bench, outside what the bundle holds.
bash .gpu/run true && mkdir -p /tmp/lc/p/bench && cp -r bench/peers /tmp/lc/p/bench/
# Keep the per-test logs: the summary prints only the ok/not ok lines.
sed -i "s#^elapsed=#cp \"\$log\"/* '$out'/ 2>/dev/null; elapsed=#" /tmp/gpu-check.sh
bash .gpu/run bash -s < /tmp/gpu-check.sh 2>&1 | tee "$out/gpu-check.log"
# The demo only when asked (GPU_HOST_DEMO=1): gpu-check alone fills most of a 10-minute call.
[ "${GPU_HOST_DEMO:-0}" = 1 ] || exit 0
echo "== demo on the GPU"
# The bundle holds dist/ and node_modules; the demo also reads the example specs.
cp -r examples /tmp/lc/p/
timeout 150 bash .gpu/run node dist/orchestrator/cli/main.js demo > "$out/demo.log" 2>&1
echo "demo exit $?"
tail -12 "$out/demo.log"
