#!/usr/bin/env bash
# Benchmarks, one command (see docs/performance.md): builds the adapters, the release
# host and the load benchmark, runs the load + memory benchmark (WASM host against the
# native baseline), the hot-swap figures, fleet convergence (push to a registry tag ->
# every replica serving it), then the WASM hop micro benchmarks. Not part of CI: the figures are
# noisy on shared 2-core machines. Extra arguments go to federation-bench, e.g.
#   scripts/bench.sh --duration 5s --concurrency 1,64
# FEDERATION_BENCH_SKIP_MICRO=1 skips the criterion benches (~4 min).
#
#   scripts/bench.sh e2e [args]   only the end-to-end part: direct in-process vs wrapper
#                                 (HTTP) vs host (gRPC), sequential and concurrent against
#                                 a fake LLM (agent-wrapper/bench/e2e.py --help for args)
# FEDERATION_BENCH_SKIP_E2E=1 skips the end-to-end part of a full run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
# Release builds of their own, beside the debug builds the tests use.
export CARGO_TARGET_DIR="$AGENT_FEDERATION_CACHE/target-bench"
export CARGO_TERM_COLOR=never

e2e() {
    local venv
    venv="${AGENT_WRAPPER_VENV:-$(agent-wrapper/scripts/venv.sh | tail -1)}"
    echo "==> end to end: direct in-process vs wrapper (HTTP) vs host (gRPC)" >&2
    PYTHONPATH=agent-wrapper/src "$venv/bin/python" agent-wrapper/bench/e2e.py \
        --host-bin "$CARGO_TARGET_DIR/release/agent-federation" "$@"
}

if [ "${1:-}" = e2e ]; then
    shift
    echo "==> adapters" >&2
    scripts/build-adapters.sh >/dev/null
    echo "==> release build: agent-federation (federation-cli)" >&2
    cargo build --release -p federation-cli
    e2e "$@"
    exit 0
fi

echo "==> adapters" >&2
scripts/build-adapters.sh >/dev/null
echo "==> release build: agent-federation (federation-cli), federation-bench" >&2
cargo build --release -p federation-cli -p federation-bench
echo "==> load and memory: WASM host vs native baseline" >&2
"$CARGO_TARGET_DIR/release/federation-bench" --adapters-dir dist/adapters "$@"
echo "==> hot swap: file written -> first task on the new version; swaps under load" >&2
cargo run --release -q -p federation-bench --example swap_bench
echo "==> fleet: adapters push -> all replicas converged (docker-registry, 3 hosts)" >&2
command -v docker-registry >/dev/null 2>&1 || scripts/setup.sh >/dev/null
cargo run --release -q -p federation-bench --example fleet_bench
if [ "${FEDERATION_BENCH_SKIP_E2E:-0}" != 1 ]; then
    e2e
fi
if [ "${FEDERATION_BENCH_SKIP_MICRO:-0}" != 1 ]; then
    echo "==> micro: the WASM hop (criterion + percentiles)" >&2
    cargo bench -p federation-bench --bench wasm_hop
fi
