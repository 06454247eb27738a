#!/usr/bin/env bash
# Validates the container setup as far as this machine allows without a Docker engine:
# compose.yaml against the Compose schema (docker-compose config), every Dockerfile
# COPY source present in its build context, and the files compose.yaml mounts.
set -euo pipefail
cd "$(dirname "$0")/.."

docker-compose -f compose.yaml config -q
echo "compose.yaml: valid ($(docker-compose -f compose.yaml config --services | tr '\n' ' '))"

check_copies() {
    local dockerfile=$1 context=$2
    # COPY lines without --from: every source but the last word must exist in the context.
    grep -E '^COPY ' "$dockerfile" | grep -v -- '--from=' | while read -r _ args; do
        read -ra words <<<"$args"
        for source in "${words[@]:0:${#words[@]}-1}"; do
            [ -e "$context/$source" ] || { echo "$dockerfile: COPY source $source missing in $context" >&2; exit 1; }
        done
    done
    echo "$dockerfile: COPY sources present"
}
check_copies host/federation-cli/Dockerfile .
check_copies agent-wrapper/Dockerfile agent-wrapper
[ -f deploy/otel-collector.yaml ] || { echo "deploy/otel-collector.yaml missing" >&2; exit 1; }
