# longctx: every target works on a fresh machine and can be run again safely.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# auto: build the CUDA backend when nvcc is found; on: require it; off: never.
LONGCTX_CUDA ?= auto
export PATH := $(PATH):/usr/local/cuda/bin

# chromium: the dashboard's browser test drives Debian's chromium (never a downloaded browser).
APT_PACKAGES := cmake g++ ninja-build redis-server libopenblas-dev libgloo-dev libhiredis-dev clang-format chromium
NPM_STAMP := node_modules/.package-lock.json
PROTO_GEN := proto/gen/longctx.js proto/gen/longctx.d.ts proto/gen/longctx.json
ADDON := build/native/Release/longctx.node

.PHONY: setup apt npm build ts addon proto dashboard lint format test demo bench clean gpu-check chaos

setup: apt npm

# Installs only what is missing; apt-get update runs first when something is.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

npm: $(NPM_STAMP)
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $(NPM_STAMP)

build: setup proto ts addon dashboard

proto: $(PROTO_GEN)
$(PROTO_GEN): proto/longctx.proto $(NPM_STAMP)
	@mkdir -p proto/gen
	npx pbjs -t static-module -w es6 --dependency protobufjs/minimal.js --force-number -o proto/gen/longctx.js proto/longctx.proto
	npx pbts -o proto/gen/longctx.d.ts proto/gen/longctx.js
	npx pbjs -t json -o proto/gen/longctx.json proto/longctx.proto

ts: proto
	npx tsc -p tsconfig.json
	@mkdir -p dist/proto/gen && cp proto/gen/longctx.js proto/gen/longctx.json dist/proto/gen/ && cp proto/longctx.proto dist/proto/
	@chmod +x dist/orchestrator/cli/main.js

# The dashboard: its TypeScript and the npm packages it uses (uPlot) bundled into one script and
# one stylesheet, so the orchestrator serves every asset itself and the page works offline.
dashboard: $(NPM_STAMP)
	npx esbuild orchestrator/dashboard/main.ts --bundle --format=esm --target=es2022 --minify --sourcemap \
	  --outfile=dist/orchestrator/dashboard/app.js --log-level=warning
	cp orchestrator/dashboard/index.html dist/orchestrator/dashboard/

addon:
	npx cmake-js build -d worker-native --out build/native --CDLONGCTX_CUDA=$(LONGCTX_CUDA) --parallel 2

# The TypeScript source folders, lowest layer first (.dependency-cruiser.cjs says who may import whom).
TS_FOLDERS := core proto checkpoints data control worker-native cluster eval orchestrator
CXX_SOURCES = $(shell find worker-native/src -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')

lint: setup proto
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p orchestrator/dashboard/tsconfig.json
	npx eslint --max-warnings 0 .
	npx depcruise --config .dependency-cruiser.cjs --output-type err $(TS_FOLDERS)
	npx prettier --check .
	clang-format --dry-run --Werror $(CXX_SOURCES)

# Rewrites files in place: TypeScript through prettier, C++ through clang-format.
format: setup
	npx prettier --write .
	clang-format -i $(CXX_SOURCES)

test: setup build lint
	npx ava

demo: build
	node dist/orchestrator/cli/main.js demo

# On a GPU host: every GPU test (test/cuda) and the GPU benchmarks, then a summary; under 8 minutes
# on one GPU. A GPU host without Node.js runs the same script through ../shared/gpu/pack's bundle:
# bash .gpu/run bash -s < scripts/gpu-check.sh
gpu-check: build
	bash scripts/gpu-check.sh

# Real jobs through real faults (rank kills, a frozen rank, server/agent/Redis deaths, damaged
# checkpoints, a full disk, telemetry reconnects); one JSON line per fault kind. Needs root (the
# full-disk fault mounts a tmpfs). Not part of `test`: it runs for minutes.
chaos: build
	node dist/test/chaos/run.js

bench: build
	npm run bench -- all --json

clean:
	rm -rf dist build proto/gen
