#!/usr/bin/env bash
# Builds the stack's images from the project's own base (scripts/docker-base.sh; nothing
# is pulled) and writes the stack's secrets, so that `docker-compose up -d` then runs:
#   agent-federation/host        the host binary + otlp-sink + dist/adapters/*.wasm
#   agent-federation/worker      the agent wrapper in a Python 3.11 venv
#   agent-federation/postgres    PostgreSQL 15 (Debian's package)
#   agent-federation/wrapper-lb  HAProxy in front of the workers
# The host image takes the binaries this checkout's build made (debug: a release build
# is too slow for CI), stripped, from a small staged context: no Rust build in a
# container. Layers are cached by the engine; the worker's ~1 GB dependency layer is
# rebuilt only when agent-wrapper/pyproject.toml or constraints.txt change.
# FEDERATION_IMAGE_TAG (default `local`) tags every image.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

tag="${FEDERATION_IMAGE_TAG:-local}"
base="${AGENT_FEDERATION_BASE_IMAGE:-local/debian:bookworm}"
secrets_dir="${FEDERATION_SECRETS_DIR:-deploy/secrets}"
stack_uid=10001

scripts/docker-base.sh

echo "==> binaries and adapters (reused when up to date)"
# FEDERATION_IMAGES_PREBUILT=1: take the binaries as they are (the caller just built
# them; skips waiting on a target directory another build holds).
[ "${FEDERATION_IMAGES_PREBUILT:-0}" = 1 ] || cargo build -q -p federation-cli -p otlp-sink
compgen -G 'dist/adapters/*.wasm' >/dev/null || scripts/build-adapters.sh

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/host/adapters" "$stage/worker"
for binary in agent-federation otlp-sink; do
    strip --strip-debug -o "$stage/host/$binary" "$CARGO_TARGET_DIR/debug/$binary"
done
cp dist/adapters/*.wasm "$stage/host/adapters/"
cp dist/adapters/*.toml "$stage/host/adapters/" 2>/dev/null || true
cp -r agent-wrapper/pyproject.toml agent-wrapper/constraints.txt agent-wrapper/README.md \
    agent-wrapper/src "$stage/worker/"
find "$stage/worker" -name __pycache__ -prune -exec rm -rf {} +
# pip inside the build trusts what pip here trusts (a TLS-inspecting proxy's CA).
build_ca="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}"
if [ -n "$build_ca" ] && [ -r "$build_ca" ]; then
    cp "$build_ca" "$stage/worker/build-ca.pem"
else
    : >"$stage/worker/build-ca.pem"
fi

build() {
    local name=$1 context=$2 dockerfile=$3 started=$SECONDS
    docker build -q --network host --build-arg "BASE_IMAGE=$base" \
        --label org.agent-federation.image="$name" \
        -t "agent-federation/$name:$tag" -f "$dockerfile" "$context" >/dev/null
    echo "image agent-federation/$name:$tag ($(docker image inspect -f '{{.Size}}' \
        "agent-federation/$name:$tag" | numfmt --to=iec), $((SECONDS - started)) s)"
}
echo "==> images (FROM $base)"
build host "$stage/host" host/federation-cli/Dockerfile
build worker "$stage/worker" agent-wrapper/Dockerfile
build postgres deploy/postgres deploy/postgres/Dockerfile
build wrapper-lb deploy/wrapper-lb deploy/wrapper-lb/Dockerfile
# The previous builds of these images, now untagged, would pile up run after run.
docker image prune -f --filter label=org.agent-federation.image >/dev/null

# The stack's secrets, once: files owned by the stack's uid with mode 0600 (compose
# mounts a file secret with its owner and mode; the host refuses a readable one).
write_secret() {
    local file=$1 content=$2
    [ -s "$file" ] && return
    (umask 077 && printf '%s\n' "$content" >"$file")
    chown "$stack_uid:$stack_uid" "$file" 2>/dev/null || sudo chown "$stack_uid:$stack_uid" "$file"
    echo "secret $file written"
}
random_token() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n'; }
mkdir -p "$secrets_dir"
write_secret "$secrets_dir/host-credential" "$(random_token)"
write_secret "$secrets_dir/postgres-passfile" "postgres:5432:federation:federation:$(random_token)"
