# Sourced by every script that builds: one place that chooses where build outputs go.
#
# Every cargo step of a script (this workspace, the adapter template and a scaffolded
# crate, which are workspaces of their own) writes to one target directory, so a step
# that reads an artifact finds it wherever cargo put it. Unless the caller set
# CARGO_TARGET_DIR, that directory is kept outside the checkout, under
# ${AGENT_FEDERATION_CACHE:-~/.cache/agent-federation}, so a fresh clone reuses the
# last build (wasmtime alone takes ~10 min on 2 cores).
AGENT_FEDERATION_CACHE="${AGENT_FEDERATION_CACHE:-$HOME/.cache/agent-federation}"
export AGENT_FEDERATION_CACHE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$AGENT_FEDERATION_CACHE/target}"
