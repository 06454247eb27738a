#!/usr/bin/env bash
# Runs the federation in containers (compose.yaml) on this machine:
#   scripts/stack.sh up      build the images (cached) and secrets, start, wait until healthy
#   scripts/stack.sh down    stop and remove the containers (volumes kept)
#   scripts/stack.sh purge   stop and remove the containers and their volumes (the data)
# The host then answers on 127.0.0.1:${FEDERATION_PORT:-50075}, e.g.
#   agent-federation call --backend crewai --goal "…"
# and the collector serves the spans on http://127.0.0.1:${OTLP_SINK_PORT:-4318}/spans.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    up)
        scripts/build-images.sh
        docker-compose up -d
        # Every service has a health check; up -d returns before they pass.
        for _ in $(seq 240); do
            states=$(docker-compose ps -q | xargs docker inspect \
                -f '{{.Name}} {{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}')
            if ! grep -qv -e 'running/healthy' -e 'running/none' <<<"$states"; then
                echo "stack: up; host on 127.0.0.1:${FEDERATION_PORT:-50075}"
                exit 0
            fi
            sleep 1
        done
        echo "stack: not healthy after 240 s:" >&2
        echo "$states" >&2
        exit 1
        ;;
    down) docker-compose down ;;
    purge) docker-compose down -v ;;
    *) echo "usage: scripts/stack.sh up|down|purge" >&2; exit 2 ;;
esac
