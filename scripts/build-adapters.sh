#!/usr/bin/env bash
# Builds the adapter components (wasm32-wasip2) and puts them where the host and the
# tests look: dist/adapters (shipped adapters), dist/test-adapters (test-only ones).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --target wasm32-wasip2 --release \
    -p crewai-adapter -p langgraph-adapter -p test-faults-adapter
out="$CARGO_TARGET_DIR/wasm32-wasip2/release"
mkdir -p dist/adapters dist/test-adapters
install -m 0644 "$out/crewai_adapter.wasm" dist/adapters/crewai.wasm
install -m 0644 "$out/langgraph_adapter.wasm" dist/adapters/langgraph.wasm
install -m 0644 "$out/test_faults_adapter.wasm" dist/test-adapters/test-faults.wasm
# Two builds of test-faults that differ only in the version describe() reports, for
# the hot-swap tests (the env var is tracked by cargo, so each is a real rebuild).
for version in 1.0.0 2.0.0; do
    TEST_FAULTS_VERSION=$version cargo build --target wasm32-wasip2 --release -p test-faults-adapter
    install -m 0644 "$out/test_faults_adapter.wasm" "dist/test-adapters/test-faults-$version.wasm"
done
ls -l dist/adapters dist/test-adapters
