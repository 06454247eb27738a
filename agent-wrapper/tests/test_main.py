"""The command line entry point."""

import os
import subprocess
import sys


def test_openai_without_endpoint_exits_with_clear_message(tmp_path):
    env = {**os.environ, "AGENT_WRAPPER_LLM_PROVIDER": "openai",
           "AGENT_WRAPPER_STATE_DIR": str(tmp_path)}
    env.pop("AGENT_WRAPPER_LLM_BASE_URL", None)
    env.pop("AGENT_WRAPPER_LLM_MODEL", None)
    done = subprocess.run([sys.executable, "-m", "agent_wrapper"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "AGENT_WRAPPER_LLM_BASE_URL and AGENT_WRAPPER_LLM_MODEL" in done.stderr
