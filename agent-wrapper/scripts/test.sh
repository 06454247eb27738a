#!/usr/bin/env bash
# Lints and tests the agent wrapper: ruff, then pytest (real CrewAI and LangGraph runs
# with the offline model; SQLite, a real PostgreSQL and a real redis-server the tests
# start).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# PostgreSQL's server binaries: on PATH, or where Debian's postgresql package puts them.
command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
    || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
venv=$("$here/scripts/venv.sh" | tail -n 1)
cd "$here"
# The cached venv may be shared by several checkouts (its editable install points at
# whichever ran venv.sh last): import this checkout's sources, in the wrapper
# processes the tests start too.
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
"$venv/bin/ruff" check src tests
"$venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
