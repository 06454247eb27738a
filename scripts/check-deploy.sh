#!/usr/bin/env bash
# Fast, engine-free checks of the container setup (the stage that starts it is
# scripts/check-stack.sh): compose.yaml (with the CI overlay) against the Compose schema,
# no image pulled (every image is one scripts/build-images.sh builds), every Dockerfile
# building FROM the project's base, and the files their COPY lines take from deploy/.
set -euo pipefail
cd "$(dirname "$0")/.."

docker-compose -f compose.yaml config -q
docker-compose -f compose.yaml -f deploy/compose.ci.yaml config -q
echo "compose.yaml: valid ($(docker-compose -f compose.yaml config --services | tr '\n' ' '))"

built=$(grep -o 'agent-federation/[a-z-]*' scripts/build-images.sh | sort -u)
docker-compose -f compose.yaml config | awk '$1 == "image:" {print $2}' | sort -u | while read -r image; do
    grep -qx "${image%%:*}" <<<"$built" \
        || { echo "compose.yaml: image $image is not built by scripts/build-images.sh (nothing is pulled)" >&2; exit 1; }
done
echo "compose.yaml: every image built here"

for dockerfile in host/federation-cli/Dockerfile agent-wrapper/Dockerfile \
    deploy/postgres/Dockerfile deploy/wrapper-lb/Dockerfile; do
    grep -qx 'FROM ${BASE_IMAGE}' "$dockerfile" \
        || { echo "$dockerfile: must build FROM \${BASE_IMAGE} (the project's base)" >&2; exit 1; }
done
for source in deploy/postgres/entrypoint.sh deploy/wrapper-lb/haproxy.cfg deploy/otel-collector.yaml; do
    [ -f "$source" ] || { echo "$source missing" >&2; exit 1; }
done
echo "Dockerfiles: FROM the project's base; deploy/ sources present"
