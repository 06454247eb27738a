#!/usr/bin/env bash
# Proves the demo's trace UI as a person would see it: runs `scripts/demo.sh --trace-ui
# --keep`, loads the page of the research_crew task's trace in headless Chromium
# (Debian's `chromium`, installed when missing) and asserts spans of both services are
# on it; cross-checks through Phoenix's REST API that the wrapper's spans hang under the
# host's in one trace; takes a screenshot (kept as docs/trace-ui.png with
# --update-screenshot).
set -euo pipefail
cd "$(dirname "$0")/.."
update=false
case "${1:-}" in
    --update-screenshot) update=true ;;
    "") ;;
    *) echo "usage: scripts/check-trace-ui.sh [--update-screenshot]" >&2; exit 2 ;;
esac

if ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/check-trace-ui.XXXXXX")
pids=""
cleanup() {
    # shellcheck disable=SC2086 # a list of pids
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> the demo with its trace UI"
if ! bash "${TRACE_UI_DEMO:-scripts/demo.sh}" --trace-ui --keep >"$work/demo.log" 2>&1; then
    cat "$work/demo.log"
    echo "check-trace-ui: the demo failed" >&2
    exit 1
fi
pids=$(sed -n 's/^stop it with: kill //p' "$work/demo.log")
# The trace printed after the research_crew task.
url=$(awk '/your own crew: research_crew/ { crew = 1 }
           crew && /in the trace UI: / { print $NF; exit }' "$work/demo.log")
[ -n "$url" ] || { cat "$work/demo.log"; echo "check-trace-ui: no trace URL printed" >&2; exit 1; }
echo "    $url"

chrome() {
    # --no-sandbox: CI runs as root. The virtual time budget lets the SPA fetch and render.
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1400,900 --virtual-time-budget=15000 "$@" 2>/dev/null
}

echo "==> the trace page in headless Chromium"
chrome --dump-dom "$url" >"$work/page.html"
chrome --screenshot="$work/trace-ui.png" "$url" >/dev/null
python3 - "$url" "$work/page.html" "$work/trace-ui.png" <<'PY'
import html, json, re, sys, urllib.request

url, page, shot = sys.argv[1:]
base, trace_id = url.split("/redirects/traces/")
text = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", open(page).read(), flags=re.S)
shown = {html.unescape(t.strip()) for t in re.sub(r"<[^>]+>", "\n", text).split("\n")}

# What each service names its spans: the host (service agent-federation) and the
# wrapper (service agent-wrapper); Phoenix keeps no resource attributes, so span names
# tell the services apart.
host = ["federation.v1.FederationService/RunAgentTask", "adapter crewai"]
wrapper = ["POST /v1/run_crew", "CrewAI_Execution", "ResearchCrew.kickoff"]
missing = [name for name in [trace_id, *host, *wrapper] if name not in shown]
assert not missing, f"not on the trace page: {missing}"

with urllib.request.urlopen(
    f"{base}/v1/projects/default/spans?trace_id={trace_id}&limit=1000", timeout=10
) as reply:
    spans = json.load(reply)["data"]
by_id = {s["context"]["span_id"]: s for s in spans}
def ancestors(span):
    while span.get("parent_id") in by_id:
        span = by_id[span["parent_id"]]
        yield span["name"]
server = next(s for s in spans if s["name"] == "POST /v1/run_crew")
chain = list(ancestors(server))
assert host[0] in chain and host[1] in chain, f"the wrapper's span is not under the host's: {chain}"
assert open(shot, "rb").read(8) == b"\x89PNG\r\n\x1a\n", "no screenshot"
print(f"    {len(spans)} spans, host and wrapper in one tree: {' <- '.join(['POST /v1/run_crew', *chain])}")
PY
if [ "$update" = true ]; then
    cp "$work/trace-ui.png" docs/trace-ui.png
    echo "    saved docs/trace-ui.png"
fi
echo "trace-ui: 1 passed, 0 failed"
