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


CANARY = "sk-canary-4c1f9e7a2b"


def test_the_api_key_never_appears_in_a_configuration_error(tmp_path):
    """A misconfigured start once printed every setting, the API key included."""
    for broken in ({"AGENT_WRAPPER_LLM_PROVIDER": "openai"},  # model-level check fails
                   {"AGENT_WRAPPER_LLM_TIMEOUT_SECONDS": "-1"}):  # a field check fails
        env = {**os.environ, "AGENT_WRAPPER_LLM_API_KEY": CANARY,
               "AGENT_WRAPPER_STATE_DIR": str(tmp_path), **broken}
        env.pop("AGENT_WRAPPER_LLM_BASE_URL", None)
        done = subprocess.run([sys.executable, "-m", "agent_wrapper"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "invalid configuration" in done.stderr
        assert CANARY not in done.stderr + done.stdout


def test_the_api_key_is_a_secret_in_the_settings() -> None:
    from agent_wrapper.core.config import Settings

    settings = Settings(llm_api_key=CANARY)
    assert CANARY not in repr(settings) and CANARY not in str(settings.model_dump())
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == CANARY
