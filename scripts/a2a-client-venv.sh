#!/usr/bin/env bash
# The official peer clients, in their own small venv under ~/.cache/agent-federation:
# PyPI `a2a-sdk` (the A2A 1.0 SDK) for the A2A interop test (tests/host/a2a.rs runs
# tests/host/a2a_client.py with it) and `mcp` (the official MCP SDK) for the MCP one
# (tests/host/mcp.rs runs tests/host/mcp_client.py). Installs once; prints the venv path.
set -euo pipefail

version=1.3.0
mcp_version=2.3.0
cache="${AGENT_FEDERATION_CACHE:-$HOME/.cache/agent-federation}"
venv="$cache/a2a-sdk-$version-mcp-$mcp_version"

if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    echo "==> installing a2a-sdk $version and mcp $mcp_version into $venv (once)" >&2
    rm -rf "$venv"
    python="${PYTHON:-python3.11}"
    command -v "$python" >/dev/null 2>&1 || python=python3
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >&2
    "$venv/bin/pip" install -q "a2a-sdk==$version" "mcp==$mcp_version" >&2
    touch "$venv/.complete"
fi
echo "$venv"
