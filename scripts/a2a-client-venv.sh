#!/usr/bin/env bash
# The official A2A client (PyPI `a2a-sdk`, the A2A 1.0 SDK) in its own small venv under
# ~/.cache/agent-federation, for the A2A interop test (tests/host/a2a.rs runs
# tests/host/a2a_client.py with it). Installs once; prints the venv path.
set -euo pipefail

version=1.3.0
cache="${AGENT_FEDERATION_CACHE:-$HOME/.cache/agent-federation}"
venv="$cache/a2a-sdk-$version"

if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    echo "==> installing a2a-sdk $version into $venv (once)" >&2
    rm -rf "$venv"
    python="${PYTHON:-python3.11}"
    command -v "$python" >/dev/null 2>&1 || python=python3
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >&2
    "$venv/bin/pip" install -q "a2a-sdk==$version" >&2
    touch "$venv/.complete"
fi
echo "$venv"
