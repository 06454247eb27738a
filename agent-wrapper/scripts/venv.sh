#!/usr/bin/env bash
# Creates (once) the wrapper's virtualenv outside the repository, keyed by the hash of
# pyproject.toml and constraints.txt, installs the package editable with its test
# extra, and prints the venv's path as the last line.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
key=$(cat "$here/pyproject.toml" "$here/constraints.txt" | sha256sum | cut -c1-12)
venv="${AGENT_FEDERATION_CACHE:-$HOME/.cache/agent-federation}/venv-$key"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >&2
    "$venv/bin/pip" install -q -c "$here/constraints.txt" -e "$here[test]" >&2
    touch "$venv/.complete"
else
    # The package is editable: source changes need nothing; refresh its metadata only.
    "$venv/bin/pip" install -q --no-deps -e "$here" >&2
fi
echo "$venv"
