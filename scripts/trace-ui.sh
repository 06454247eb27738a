#!/usr/bin/env bash
# A trace UI without containers: Arize Phoenix (PyPI `arize-phoenix`; it reads the
# OpenInference attributes the wrapper writes and takes OTLP over HTTP and gRPC).
#
#   scripts/trace-ui.sh install      installs it (once) into its own venv under
#                                    ~/.cache/agent-federation, prints the venv path
#   scripts/trace-ui.sh start DIR    starts it on free loopback ports with its data in
#                                    DIR, waits until it answers, prints
#                                    `TRACE_UI_URL=… TRACE_UI_OTLP_GRPC=… TRACE_UI_PID=…`
#
# Trace pages: $TRACE_UI_URL/redirects/traces/<trace id>. OTLP/HTTP goes to
# $TRACE_UI_URL (the exporters append /v1/traces); it takes no metrics.
set -euo pipefail

version=20.26.1
cache="${AGENT_FEDERATION_CACHE:-$HOME/.cache/agent-federation}"
venv="$cache/phoenix-$version"

install() {
    if [ ! -x "$venv/bin/phoenix" ] || [ ! -f "$venv/.complete" ]; then
        echo "==> installing arize-phoenix $version into $venv (~1 min, ~850 MB, once)" >&2
        rm -rf "$venv"
        local python="${PYTHON:-python3.11}"
        command -v "$python" >/dev/null 2>&1 || python=python3
        "$python" -m venv "$venv"
        "$venv/bin/pip" install -q --upgrade pip >&2
        "$venv/bin/pip" install -q "arize-phoenix==$version" >&2
        touch "$venv/.complete"
    fi
    echo "$venv"
}

free_port() {
    "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
    local dir=$1
    install >/dev/null
    mkdir -p "$dir"
    local port grpc_port
    port=$(free_port)
    grpc_port=$(free_port)
    # No telemetry pixels, no web fonts or downloads: it must work offline.
    PHOENIX_WORKING_DIR="$dir" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$port" \
        PHOENIX_GRPC_PORT="$grpc_port" PHOENIX_TELEMETRY_ENABLED=false \
        PHOENIX_ALLOW_EXTERNAL_RESOURCES=false \
        "$venv/bin/phoenix" serve >"$dir/phoenix.log" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 1 600); do
        if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then
            echo "TRACE_UI_URL=http://127.0.0.1:$port TRACE_UI_OTLP_GRPC=http://127.0.0.1:$grpc_port TRACE_UI_PID=$pid"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.2
    done
    echo "Phoenix did not come up; its log:" >&2
    cat "$dir/phoenix.log" >&2
    kill "$pid" 2>/dev/null || true
    return 1
}

case "${1:-}" in
    install) install ;;
    start) [ -n "${2:-}" ] || { echo "usage: scripts/trace-ui.sh start DIR" >&2; exit 2; }; start "$2" ;;
    *) echo "usage: scripts/trace-ui.sh install | start DIR" >&2; exit 2 ;;
esac
