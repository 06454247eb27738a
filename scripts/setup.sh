#!/usr/bin/env bash
# Installs what building and testing need on a fresh machine, idempotently:
# the wasm32-wasip2 Rust target, redis-server (for the wrapper's shared-store tests),
# docker-compose (only to validate compose.yaml: no engine runs here), docker-registry
# (a real OCI registry the fleet tests and the fleet benchmark start on loopback),
# and the agent wrapper's Python venv (kept outside the repo, keyed by its pyproject).
# Prints `AGENT_WRAPPER_VENV=<path>` as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv=$(agent-wrapper/scripts/venv.sh | tail -n 1)
echo "AGENT_WRAPPER_VENV=$venv"
