"""Fixtures of the "agents run unmodified" tests: the registry of projects written
the way each framework's docs write them, and a recording OpenAI-compatible provider
on loopback configured as the process's ``OPENAI_BASE_URL``."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_AGENTS
from tests.fixtures.fake_openai import FakeOpenAI, start_fake_openai

AS_DOCUMENTED = FIXTURE_AGENTS.parent / "as_documented.toml"
FIXTURES: Path = FIXTURE_AGENTS.parent


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A provider nobody configured for the wrapper, as the process environment's
    OpenAI endpoint (what ``ChatOpenAI()``, the ``openai`` SDK and litellm read)."""
    fake = start_fake_openai()
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-process-environment-key")
    yield fake
    fake.stop()
