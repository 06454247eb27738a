#!/usr/bin/env bash
# Makes the container base the project's images build FROM, without pulling anything:
# starts the Docker daemon when it is not running, then makes `local/debian:bookworm`
# from Debian's packages (debootstrap minbase + docker import) unless the engine has it.
# Cached twice: the engine keeps the image across runs, and a gzip of the root file
# system under ${AGENT_FEDERATION_CACHE:-~/.cache/agent-federation} brings it back
# (~10 s) after the engine's images were pruned, instead of a new debootstrap (~1-2 min).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

base_image="${AGENT_FEDERATION_BASE_IMAGE:-local/debian:bookworm}"
# Bump when the root file system's recipe below changes: the cached image and tarball
# of an older recipe are then made again.
base_recipe=2
base_tarball="$AGENT_FEDERATION_CACHE/images/debian-bookworm-minbase-r$base_recipe.tar.gz"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_daemon() {
    docker info >/dev/null 2>&1 && return
    command -v dockerd >/dev/null || { echo "docker-base: no Docker engine (dockerd) installed" >&2; exit 1; }
    echo "docker-base: starting dockerd (log: /var/log/dockerd.log)"
    as_root sh -c 'dockerd >/var/log/dockerd.log 2>&1 &'
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
    echo "docker-base: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
    exit 1
}

make_rootfs_tarball() {
    if ! command -v debootstrap >/dev/null; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >/dev/null
    fi
    local rootfs
    rootfs=$(mktemp -d)
    trap 'as_root rm -rf "$rootfs"' RETURN
    echo "docker-base: debootstrap bookworm (minbase) into $rootfs"
    as_root debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    # Small layers above it: apt keeps no package caches and dpkg installs no manuals,
    # documentation or translations (as Debian's own container images do).
    as_root tee "$rootfs/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Install-Recommends "false";
APT
    as_root tee "$rootfs/etc/dpkg/dpkg.cfg.d/docker-excludes" >/dev/null <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
DPKG
    as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb
    mkdir -p "$(dirname "$base_tarball")"
    as_root tar -C "$rootfs" -c . | gzip -1 >"$base_tarball.tmp"
    mv "$base_tarball.tmp" "$base_tarball"
}

ensure_daemon
present=$(docker image inspect -f '{{index .Config.Labels "org.agent-federation.base-recipe"}}' \
    "$base_image" 2>/dev/null || true)
if [ "$present" = "$base_recipe" ]; then
    echo "docker-base: $base_image present (recipe $base_recipe)"
    exit 0
fi
[ -s "$base_tarball" ] || make_rootfs_tarball
echo "docker-base: importing $base_tarball as $base_image"
docker import --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.agent-federation.base-recipe=$base_recipe" "$base_tarball" "$base_image" >/dev/null
docker image inspect "$base_image" --format "docker-base: $base_image {{.Size}} bytes"
