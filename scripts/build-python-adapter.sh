#!/usr/bin/env bash
# Builds the Python `http-agent` adapter (adapters/python-http) into a WebAssembly
# component for the `agent-backend` world with componentize-py:
#   dist/adapters-extra/http-agent.wasm
#
# componentize-py is pinned and installed once into a venv outside the repo
# (${AGENT_FEDERATION_CACHE:-~/.cache/agent-federation}/componentize-py-<version>).
# The adapter's unit tests (adapters/python-http/tests) run on CPython against the
# generated bindings before the component is built. When app.py, its tests, the WIT
# files and this script are unchanged since the last build, nothing is rebuilt
# (FORCE=1 rebuilds).
# Needs python3 (3.11 tested) with venv/pip, and PyPI on the first run only.
set -euo pipefail
cd "$(dirname "$0")/.."

CPY_VERSION=0.25.1
WORLD=agent-backend
cache="${AGENT_FEDERATION_CACHE:-$HOME/.cache/agent-federation}"
venv="$cache/componentize-py-$CPY_VERSION"
src=adapters/python-http
out_dir=dist/adapters-extra
out="$out_dir/http-agent.wasm"
stamp="$out_dir/.http-agent.inputs"

report() {
    local bytes
    bytes=$(stat -c %s "$out")
    echo "$out: $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB)$1"
}

inputs=$(cat scripts/build-python-adapter.sh "$src/app.py" "$src"/tests/*.py wit/*.wit | sha256sum | cut -c1-64)
if [[ -z "${FORCE:-}" && -f "$out" && -f "$stamp" && "$(cat "$stamp")" == "$inputs" ]]; then
    report ", up to date"
    exit 0
fi
started=$(date +%s.%N)

# componentize-py, pinned, in its own venv (a `.complete` marker guards half-made venvs).
if [[ ! -f "$venv/.complete" ]]; then
    python="$(command -v python3.11 || command -v python3)"
    echo "installing componentize-py $CPY_VERSION into $venv (with $python)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$CPY_VERSION"
    touch "$venv/.complete"
fi
# Keep an active virtualenv's site-packages out of the component.
unset VIRTUAL_ENV
cpy=("$venv/bin/componentize-py" --quiet -d wit -w "$WORLD")

# Bindings for the tests (componentize generates its own), once per WIT content.
bindings="$venv/bindings-$(cat wit/*.wit | sha256sum | cut -c1-12)"
if [[ ! -d "$bindings" ]]; then
    "${cpy[@]}" bindings "$bindings.tmp$$"
    mv "$bindings.tmp$$" "$bindings"
fi
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$src:$bindings" "$venv/bin/python" -m unittest discover --quiet -s "$src/tests"

# Only app.py goes into the component (not the tests or the README).
stage=$(mktemp -d)
trap 'rm -rf "$stage" "$out.tmp$$"' EXIT
cp "$src/app.py" "$stage/"
mkdir -p "$out_dir"
"${cpy[@]}" componentize -p "$stage" app -o "$out.tmp$$"
mv "$out.tmp$$" "$out"
echo "$inputs" >"$stamp"
report ", built in $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
