#!/usr/bin/env bash
# Runs every test: lint, the host's unit and integration tests (real host process,
# real adapters, stub wrapper, real OTLP receiver), the agent wrapper's pytest suite
# (real CrewAI/LangGraph, file store and a real redis-server), and the end-to-end
# suite (host + adapters + real wrapper + OTLP receiver, one trace across all).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

venv_line=$(scripts/setup.sh | tail -n 1)
export AGENT_WRAPPER_VENV="${venv_line#AGENT_WRAPPER_VENV=}"

echo "==> lint (rustfmt, clippy)"
cargo fmt --all -- --check
cargo clippy --workspace --exclude crewai-adapter --exclude langgraph-adapter \
    --exclude test-faults-adapter --exclude federation-adapter-sdk --all-targets -- -D warnings
cargo clippy --target wasm32-wasip2 -p crewai-adapter -p langgraph-adapter \
    -p test-faults-adapter -p federation-adapter-sdk -- -D warnings

echo "==> container setup (compose.yaml, Dockerfiles)"
scripts/check-deploy.sh

echo "==> adapters"
scripts/build-adapters.sh
# The Python adapter (componentize-py): unit tests, lint, then the component.
"$AGENT_WRAPPER_VENV/bin/ruff" check adapters/python-http
"$AGENT_WRAPPER_VENV/bin/ruff" format --check adapters/python-http
scripts/build-python-adapter.sh

echo "==> adapter template (as a user copies it)"
(cd templates/rust-adapter && cargo fmt --check && cargo test \
    && cargo clippy --target wasm32-wasip2 -- -D warnings \
    && cargo build --release --target wasm32-wasip2)

echo "==> host: each crate's unit tests"
cargo build -p federation-cli
cargo test -p federation-proto -p federation-wire -p federation-runtime -p federation-host \
    -p federation-a2a -p federation-mcp -p federation-cli -p federation-testkit -p otlp-sink

echo "==> host integration tests (tests/host: the real binary on port 0)"
# tests/host/a2a.rs and mcp.rs drive the host with the official A2A and MCP clients
# (a2a-sdk and mcp, in their own venv).
A2A_CLIENT_VENV="$(scripts/a2a-client-venv.sh | tail -n 1)"
export A2A_CLIENT_VENV
host_suites=()
for suite in tests/host/*.rs; do host_suites+=(--test "$(basename "$suite" .rs)"); done
cargo test -p federation-tests "${host_suites[@]}"

echo "==> adapter check on the template's build (as an author would run it)"
"$CARGO_TARGET_DIR/debug/agent-federation" adapter check \
    "$CARGO_TARGET_DIR/wasm32-wasip2/release/my_adapter.wasm"

echo "==> adapter new: a scaffolded crate builds and passes adapter check"
scaffold="$(mktemp -d)/scaffold-agent"
"$CARGO_TARGET_DIR/debug/agent-federation" adapter new scaffold-agent --dir "$scaffold" --sdk adapters/sdk
(cd "$scaffold" && cargo build --release --target wasm32-wasip2)
"$CARGO_TARGET_DIR/debug/agent-federation" adapter check \
    "$CARGO_TARGET_DIR/wasm32-wasip2/release/scaffold_agent.wasm"
rm -rf "$(dirname "$scaffold")"

echo "==> agent wrapper tests"
agent-wrapper/scripts/test.sh

echo "==> end-to-end tests (tests/e2e)"
cargo test -p federation-tests --test e2e -- --test-threads 1

echo "==> containers (images from the build above; a worker killed, PostgreSQL restarted)"
scripts/check-stack.sh

echo "==> trace UI (Phoenix in its own cached venv, headless Chromium; ~1 min warm)"
scripts/check-trace-ui.sh
