#!/usr/bin/env bash
# The main job on embedded defaults: set up, build, start an OTLP receiver, the agent
# wrapper (offline deterministic model, file store, the example agents of
# examples/agents.toml) and the host on free loopback ports, send one real task per
# backend with an orchestrator traceparent, then run the example crew and the example
# graph (its tool, its interrupt and the resume), printing each result, its trace id
# and the span tree it produced across Rust and Python. Every door is locked as in
# production: the host serves TLS and authenticates callers by token (certificates and
# token from `agent-federation dev-certs`), and the wrapper answers only its host (a
# host credential both share).
#
# scripts/demo.sh --keep       leaves the stack running afterwards and prints commands to try
# scripts/demo.sh --trace-ui   also starts Arize Phoenix (scripts/trace-ui.sh: its own venv
#                              under ~/.cache/agent-federation), sends both services' spans
#                              there and prints each trace's URL instead of its text tree
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
root=$(pwd)
keep=false
trace_ui=false
for arg in "$@"; do
    case "$arg" in
        --keep) keep=true ;;
        --trace-ui) trace_ui=true ;;
        *) echo "usage: scripts/demo.sh [--keep] [--trace-ui]" >&2; exit 2 ;;
    esac
done

echo "==> setting up (the wasm32-wasip2 target, the wrapper's venv: ~2 min the first time)"
venv_line=$(scripts/setup.sh | tail -n 1)
venv="${venv_line#AGENT_WRAPPER_VENV=}"
echo "==> building the host and the adapters (~10 min the first time: wasmtime is big)"
scripts/build-adapters.sh >/dev/null
# Progress, not silence: a line every 25 crates compiled, then cargo's summary.
cargo build -p federation-cli -p otlp-sink 2>&1 | awk '
    /^ *Compiling/ { n++; if (n % 25 == 1) printf "    compiling... (%d crates so far)\n", n }
    /^ *Finished/ { print "    " $0 }
    /^error/ { print; failed = 1 }
    END { exit failed }'
bin="$CARGO_TARGET_DIR/debug"

run=$(mktemp -d "${TMPDIR:-/tmp}/agent-federation-demo.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Reads the first stdout line of a background process (its "ready" line).
wait_line() {
    local file=$1 pattern=$2
    for _ in $(seq 1 600); do
        if grep -q "$pattern" "$file" 2>/dev/null; then grep -m1 "$pattern" "$file"; return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file" >&2; cat "$file" >&2; return 1
}

echo "==> starting the OTLP receiver"
"$bin/otlp-sink" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 >"$run/sink.out" 2>&1 &
pids+=($!)
sink_line=$(wait_line "$run/sink.out" "^otlp-sink ")
sink_http=$(sed -E 's/.*http=([^ ]+).*/\1/' <<<"$sink_line")

# Both services speak OTLP/HTTP to one endpoint: the receiver's, or the trace UI's (which
# takes no metrics: the host's go to the receiver through the per-signal endpoint).
otlp=("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" "OTEL_EXPORTER_OTLP_ENDPOINT=$sink_http")
if [ "$trace_ui" = true ]; then
    echo "==> starting the trace UI (Arize Phoenix)"
    ui_line=$(scripts/trace-ui.sh start "$run/phoenix" | tail -n 1)
    ui_url=$(sed -E 's/.*TRACE_UI_URL=([^ ]+).*/\1/' <<<"$ui_line")
    pids+=("$(sed -E 's/.*TRACE_UI_PID=([^ ]+).*/\1/' <<<"$ui_line")")
    echo "    $ui_url"
    otlp=("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" "OTEL_EXPORTER_OTLP_ENDPOINT=$ui_url"
          "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=$sink_http/v1/metrics")
fi

echo "==> credentials: TLS certificates and a caller token (agent-federation dev-certs), a host credential for the wrapper"
"$bin/agent-federation" dev-certs "$run/certs" >/dev/null
(umask 077 && "$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$run/wrapper-credential")
# Every client command below: https, the demo's CA, the demo caller's token.
export FEDERATION_TLS_CA="$run/certs/ca.pem" FEDERATION_TOKEN_FILE="$run/certs/token"

echo "==> starting the agent wrapper (offline deterministic model, file store, examples/agents.toml)"
wrapper_port=$(free_port)
(cd "$run" && export "${otlp[@]}" && AGENT_WRAPPER_STATE_DIR="$run/state" \
    AGENT_WRAPPER_AGENTS_FILE="$root/examples/agents.toml" OTEL_BSP_SCHEDULE_DELAY=200 \
    AGENT_WRAPPER_HOST_CREDENTIAL_FILE="$run/wrapper-credential" \
    exec "$venv/bin/python" -m agent_wrapper --host 127.0.0.1 --port "$wrapper_port") >"$run/wrapper.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
    "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$wrapper_port/healthz', timeout=1)" 2>/dev/null && break
    sleep 0.1
done

echo "==> starting the host"
env "${otlp[@]}" OTEL_BSP_SCHEDULE_DELAY=200 \
    "$bin/agent-federation" serve --listen 127.0.0.1:0 \
    --wrapper-url "http://127.0.0.1:$wrapper_port" --adapters-dir "$root/dist/adapters" \
    --compile-cache-dir "$HOME/.cache/agent-federation/compile-cache" \
    --tls-cert "$run/certs/server.pem" --tls-key "$run/certs/server-key.pem" \
    --auth-file "$run/certs/auth.toml" --wrapper-credential-file "$run/wrapper-credential" \
    >"$run/host.out" 2>"$run/host.log" &
pids+=($!)
host_addr=$(wait_line "$run/host.out" "listening on" | awk '{print $NF}')

tree() {
    sleep 1.5  # both exporters batch for 200 ms
    if [ "$trace_ui" = true ]; then
        echo "--- trace $1 in the trace UI: $ui_url/redirects/traces/$1"
        return
    fi
    echo "--- span tree of trace $1 ---"
    "$venv/bin/python" -c "import urllib.request; print(urllib.request.urlopen('$sink_http/tree?trace_id=$1').read().decode())"
}

status=0
# CrewAI as one blocking RunAgentTask; LangGraph as StreamAgentTask, printing the
# graph's progress events as they arrive.
for backend in crewai langgraph; do
    trace_id=$("$venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))')
    parent=$("$venv/bin/python" -c 'import secrets; print(secrets.token_hex(8))')
    mode=(); rpc=RunAgentTask
    if [ "$backend" = langgraph ]; then mode=(--stream); rpc=StreamAgentTask; fi
    echo
    echo "==> $rpc backend=$backend (orchestrator traceparent 00-$trace_id-$parent-01)"
    if ! "$bin/agent-federation" call "${mode[@]}" --addr "https://$host_addr" --backend "$backend" \
        --goal "Explain in two sentences why AI agent adapters should run in a WebAssembly sandbox" \
        --context "Audience: platform engineers" --input '{"tone": "plain"}' \
        --session "demo-$backend-$(date +%s)" --traceparent "00-$trace_id-$parent-01"; then
        status=1
        continue
    fi
    tree "$trace_id"
done
new_trace() {
    trace_id=$("$venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))')
    traceparent="00-$trace_id-$("$venv/bin/python" -c 'import secrets; print(secrets.token_hex(8))')-01"
}
call() { "$bin/agent-federation" call --addr "https://$host_addr" "$@" || status=1; }

echo
echo "==> the example agents (examples/agents.toml) the host can reach"
"$bin/agent-federation" agents --addr "https://$host_addr" || status=1

new_trace
echo
echo "==> your own crew: research_crew (classic CrewAI project, fact_sheet tool, {topic}/{audience})"
call --backend crewai --agent research_crew --goal "Brief the team" \
    --input '{"topic": "WebAssembly sandboxes", "audience": "platform engineers"}' \
    --session "demo-crew-$(date +%s)" --traceparent "$traceparent"
tree "$trace_id"

new_trace
trip="demo-trip-$(date +%s)"
echo
echo "==> your own graph: trip_planner (langgraph.json, weather tool node, an interrupt), streamed"
call --stream --backend langgraph --agent trip_planner --goal "Plan a weekend in Lisbon" \
    --input '{"city": "Lisbon", "budget": 600}' --session "$trip" --traceparent "$traceparent"
echo
echo "==> answering its question: --resume '{\"approved\": true}' (same session, same trace)"
call --backend langgraph --agent trip_planner --goal "Plan a weekend in Lisbon" \
    --resume '{"approved": true}' --session "$trip" --traceparent "$traceparent"
tree "$trace_id"

if [ "$status" -ne 0 ]; then
    echo "---- host log ----"; tail -n 50 "$run/host.log"
    echo "---- wrapper log ----"; tail -n 50 "$run/wrapper.log"
fi
if [ "$keep" = true ] && [ "$status" -eq 0 ]; then
    trap - EXIT
    cat <<TRY

==> the stack keeps running (logs in $run); its clients need the demo's CA and token:
  export FEDERATION_TLS_CA=$run/certs/ca.pem FEDERATION_TOKEN_FILE=$run/certs/token
  $bin/agent-federation agents --addr https://$host_addr
  $bin/agent-federation call --addr https://$host_addr --backend crewai --agent research_crew \\
      --goal "Brief the team" --input '{"topic": "OpenTelemetry", "audience": "SREs"}'
  $bin/agent-federation call --addr https://$host_addr --stream --backend langgraph \\
      --agent trip_planner --session mine --goal "Plan a trip" --input '{"city": "Oslo", "budget": 900}'
  $bin/agent-federation call --addr https://$host_addr --backend langgraph --agent trip_planner \\
      --session mine --goal "Plan a trip" --resume '{"approved": true}'
  curl -s "$sink_http/tree?trace_id=TRACE_ID"     # the span tree of a trace${ui_url:+
  $ui_url/redirects/traces/TRACE_ID              # a trace in the trace UI}
stop it with: kill ${pids[*]}
TRY
fi
exit "$status"
