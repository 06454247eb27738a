#!/usr/bin/env bash
# The CI stage of the containers: builds the images (cached), starts compose.yaml (host,
# HAProxy, two workers, PostgreSQL, the OTLP receiver) as its own compose project, and
# proves, only through the ports published on 127.0.0.1:
#   1. a task runs through the host, and its trace reaches the collector from both services;
#   2. a worker killed mid-run loses nothing: the other worker finishes the run from the
#      durable queue, resuming after the dead worker's checkpoint, and it completes once;
#   3. PostgreSQL killed and restarted loses no run: finished runs are read back from it,
#      and new runs go on;
# then tears the stack down (also on failure, after printing the services' logs).
# Prints each phase's time. Needs root or a docker group member (starts dockerd itself).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

started_at=$SECONDS
phase_at=
phase() {
    [ -z "$phase_at" ] || echo "    ($((SECONDS - phase_at)) s)"
    phase_at=$SECONDS
    echo "==> stack: $*"
}
fail() { echo "check-stack: FAILED: $*" >&2; exit 1; }

command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A compose project of its own, on free loopback ports, so a developer's stack and this
# check never meet.
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-agent-federation-check}"
export FEDERATION_PORT="${FEDERATION_PORT:-$(free_port)}"
export OTLP_SINK_PORT="${OTLP_SINK_PORT:-$(free_port)}"
compose() { docker-compose -f compose.yaml -f deploy/compose.ci.yaml "$@"; }
cli="$CARGO_TARGET_DIR/debug/agent-federation"
host="http://127.0.0.1:$FEDERATION_PORT"
fed() { "$cli" "$@" --addr "$host"; }
# As a caller does: the same request again while the host says UNAVAILABLE (exit 6:
# e.g. no worker in the balancer for a moment), at most 30 times.
# Only the last attempt's output is kept: with --json a refused attempt prints its error
# as JSON too, and two documents in one answer fooled the checks below.
fed_retrying() {
    local attempt code out
    for attempt in $(seq 30); do
        code=0
        out=$(fed "$@") || code=$?
        if [ "$code" -ne 6 ]; then
            printf '%s\n' "$out"
            return "$code"
        fi
        echo "    (UNAVAILABLE, attempt $attempt: retrying): $out" >&2
        sleep 1
    done
    return 6
}
work=$(mktemp -d)

teardown() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        echo "---- services (failure: last log lines) ----"
        compose ps || true
        compose logs --no-color --tail 40 || true
    fi
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$work"
    echo "==> stack: done in $((SECONDS - started_at)) s (status $status)"
}

# Waits until every named service's container is healthy; fails at once when one exits
# or turns unhealthy (with its state), and after 240 s of neither.
wait_healthy() {
    local deadline=$((SECONDS + 240)) service id state pending
    while :; do
        pending=()
        for service in "$@"; do
            id=$(compose ps -q "$service")
            [ -n "$id" ] || fail "no container for $service"
            state=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
            case "$state" in
                running/healthy | running/none) ;;
                running/starting) pending+=("$service") ;;
                *) fail "$service is $state" ;;
            esac
        done
        [ "${#pending[@]}" -eq 0 ] && return
        [ "$SECONDS" -lt "$deadline" ] || fail "not healthy after 240 s: ${pending[*]}"
        sleep 1
    done
}
# A command to HAProxy's runtime API, which listens inside its container only.
lb_admin() {
    compose exec -T wrapper-lb bash -c \
        'exec 3<>/dev/tcp/127.0.0.1/9999 && echo "$1" >&3 && timeout 5 cat <&3' _ "$1"
}
all_services=(postgres otel-collector worker-1 worker-2 wrapper-lb host)

phase "images"
scripts/build-images.sh

phase "up (project $COMPOSE_PROJECT_NAME, host $host, collector :$OTLP_SINK_PORT)"
trap teardown EXIT
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d
wait_healthy "${all_services[@]}"

phase "a task through the host, traced to the collector by both services"
first=$(fed call --json --backend crewai --goal "Check the stack" --session ci-first --request-id r-first)
jq -e '.output != "" and .result.state.store == "postgres"' <<<"$first" >/dev/null \
    || fail "first task: $first"
trace=$(jq -r .trace_id <<<"$first")
graph=$(fed call --json --backend langgraph --goal "Plan the check" --session ci-graph)
jq -e '.output != ""' <<<"$graph" >/dev/null || fail "graph task: $graph"
# Spans are exported in batches: wait (bounded) for both services' spans of the trace.
for _ in $(seq 60); do
    services=$(curl -fsS "http://127.0.0.1:$OTLP_SINK_PORT/spans?trace_id=$trace" \
        | jq -r '[.[].service_name] | unique | join(",")')
    [[ "$services" == *agent-federation* && "$services" == *agent-wrapper* ]] && break
    sleep 1
done
[[ "$services" == *agent-federation* && "$services" == *agent-wrapper* ]] \
    || fail "trace $trace at the collector has spans of [$services] only"
echo "    trace $trace: spans of $services"

phase "a worker killed mid-run: the other finishes it, once"
# worker-2 is taken out of the balancer (maintenance, still running), so the run is
# worker-1's; it comes back once worker-1 is dead.
lb_admin "set server workers/worker-2 state maint"
worker1=$(compose ps -q worker-1)
goal="Outlive a worker"
fed call --stream --json --backend crewai --goal "$goal" --session ci-kill \
    --request-id r-kill >"$work/stream.jsonl" 2>"$work/stream.err" &
stream=$!
# Mid-run: the first task's checkpoint is stored, the second task is still to come.
until grep -q '"type":"checkpoint"' "$work/stream.jsonl"; do
    kill -0 "$stream" 2>/dev/null || fail "the stream ended before a checkpoint: $(cat "$work/stream.jsonl" "$work/stream.err")"
    sleep 0.2
done
docker kill -s SIGKILL "$worker1" >/dev/null
grep -q '"type":"completed"' "$work/stream.jsonl" && fail "the run completed before its worker was killed"
lb_admin "set server workers/worker-2 state ready"
wait "$stream" && fail "the stream of the killed worker's run ended well: $(tail -n 2 "$work/stream.jsonl")"
# The caller retries with the same request id (as on any UNAVAILABLE): it is answered
# with the run worker-2 took over from the queue once worker-1's claim lapsed.
retry=$(fed_retrying call --json --backend crewai --goal "$goal" --session ci-kill --request-id r-kill)
jq -e '.result.steps[0].resumed_from_checkpoint == true' <<<"$retry" >/dev/null \
    || fail "the first task was run again instead of resumed: $(jq -c .result.steps <<<"$retry")"
jq -e '.result.state.run_count == 1 and ([.result.history[] | select(.request_id == "r-kill")] | length) == 1' \
    <<<"$retry" >/dev/null || fail "the run completed more than once: $(jq -c .result.history <<<"$retry")"
echo "    r-kill: $(jq -c '[.result.steps[] | {name, resumed_from_checkpoint}]' <<<"$retry")"
compose start worker-1 >/dev/null
wait_healthy worker-1

phase "PostgreSQL killed and restarted: no run lost"
compose kill -s SIGKILL postgres >/dev/null
compose start postgres >/dev/null
wait_healthy postgres
# Read back from the database (the host keeps no record of these runs).
for attempt in $(seq 30); do
    got=$(fed get --json ci-first/r-first) && break
    [ "$attempt" -lt 30 ] || fail "r-first after the restart: $got"
    sleep 1 # the workers' pools reconnect
done
jq -e --arg out "$(jq -r .output <<<"$first")" '.state == "COMPLETED" and .response.output == $out' \
    <<<"$got" >/dev/null || fail "r-first after the restart: $got"
replay=$(fed_retrying call --json --backend crewai --goal "$goal" --session ci-kill --request-id r-kill)
[ "$(jq -r .output <<<"$replay")" == "$(jq -r .output <<<"$retry")" ] \
    || fail "r-kill after the restart answered $(jq -c '{output, steps: [.result.steps[]? | {name, resumed_from_checkpoint}]}' <<<"$replay"), before it $(jq -c '{output, steps: [.result.steps[]? | {name, resumed_from_checkpoint}]}' <<<"$retry")"
after=$(fed_retrying call --json --backend crewai --goal "After the restart" --session ci-first --request-id r-after)
jq -e '.result.state.run_count == 2' <<<"$after" >/dev/null \
    || fail "a new run in an old session after the restart: $(jq -c .result.state <<<"$after")"
echo "    r-first and r-kill read back; r-after is the session's run 2"
wait_healthy "${all_services[@]}"

phase "down"
