"""LLM selection: the configured model for CrewAI and for LangGraph, nothing else.

Every framework object gets its LLM passed explicitly from here, so no agent can
fall back to a provider that was not configured.

The OpenAI-compatible clients are built once per factory (one configured endpoint) and
shared by every request: building a CrewAI ``LLM`` makes two OpenAI clients, each with
its own SSL context and connection pool (~38 ms of CPU per crew request when it was per
request). Both are safe to share: ``ChatOpenAI`` holds only its config and thread-safe
httpx clients, and CrewAI overrides stop words per call through a context variable,
never by mutating the LLM. The offline models stay per request (they are cheap and
count one request's calls).
"""

import threading
from dataclasses import dataclass, field
from typing import Any

from agent_wrapper.core.config import Settings
from agent_wrapper.llm.offline import (
    OFFLINE_MODEL,
    CallCounter,
    OfflineChatModel,
    OfflineCrewLLM,
)

# What replies, spans and events name as the model of an agent that brings its own
# (registry ``llm = "own"``): the wrapper neither chose nor configured it.
OWN_MODEL = "own"


@dataclass
class LLMBundle:
    """The LLM objects of one request plus what the reply reports about them."""

    provider: str  # "offline" | "openai-compatible" | "own"
    model: str
    counter: CallCounter = field(default_factory=CallCounter)
    # Calls agent code made through the model gateway (llm/gateway.py) and their tokens.
    gateway: dict[str, int] = field(default_factory=lambda: {
        "calls": 0, "input_tokens": 0, "output_tokens": 0})
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"provider": self.provider, "model": self.model}
        with self._mutex:
            if self.gateway["calls"]:
                info["gateway"] = dict(self.gateway)
        return info

    def add_gateway_call(self, input_tokens: int, output_tokens: int) -> None:
        with self._mutex:
            self.gateway["calls"] += 1
            self.gateway["input_tokens"] += input_tokens
            self.gateway["output_tokens"] += output_tokens

    def mark_own(self) -> None:
        """The run's agent brings its own model: say so instead of the configured one.
        The execution span (current when a runner calls this) says so too."""
        from opentelemetry import trace

        self.provider = self.model = OWN_MODEL
        span = trace.get_current_span()
        span.set_attribute("llm.provider", OWN_MODEL)
        span.set_attribute("llm.model_name", OWN_MODEL)


class LLMFactory:
    """Gives each request its LLM objects from the settings: the shared clients of the
    configured endpoint, or fresh offline models (tests may subclass)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._shared: dict[str, Any] = {}
        self._mutex = threading.Lock()

    def _once(self, kind: str, build: Any) -> Any:
        with self._mutex:
            if kind not in self._shared:
                self._shared[kind] = build()
            return self._shared[kind]

    def bundle(self) -> LLMBundle:
        if self.settings.llm_provider == "openai":
            return LLMBundle("openai-compatible", str(self.settings.llm_model))
        return LLMBundle("offline", OFFLINE_MODEL)

    def crewai_llm(self, bundle: LLMBundle) -> Any:
        if self.settings.llm_provider == "openai":
            return self._once("crewai", self._openai_crew_llm)
        # BaseLLM validates `model` at construction: pass it explicitly.
        return OfflineCrewLLM(model=OFFLINE_MODEL, counter=bundle.counter)

    def _openai_crew_llm(self) -> Any:
        from crewai import LLM

        return LLM(
            model=f"openai/{self.settings.llm_model}",
            base_url=self.settings.llm_base_url,
            api_key=self._api_key(),
            timeout=self.settings.llm_timeout_seconds,
            max_retries=self.settings.llm_max_retries,
        )

    def chat_model(self, bundle: LLMBundle) -> Any:
        if self.settings.llm_provider == "openai":
            return self._once("langchain", self._openai_chat_model)
        return OfflineChatModel(counter=bundle.counter)

    def _openai_chat_model(self) -> Any:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=str(self.settings.llm_model),
            base_url=self.settings.llm_base_url,
            api_key=self._api_key(),
            timeout=self.settings.llm_timeout_seconds,
            max_retries=self.settings.llm_max_retries,
        )

    def _api_key(self) -> str:
        key = self.settings.llm_api_key
        return key.get_secret_value() if key is not None else "unused"

    def configured(self) -> list[str]:
        """Reasons the LLM is not usable (empty when ready)."""
        if self.settings.llm_provider == "openai" and not (
            self.settings.llm_base_url and self.settings.llm_model
        ):
            return ["openai provider needs AGENT_WRAPPER_LLM_BASE_URL and AGENT_WRAPPER_LLM_MODEL"]
        return []


__all__ = ["OFFLINE_MODEL", "OWN_MODEL", "CallCounter", "LLMBundle", "LLMFactory",
           "OfflineChatModel", "OfflineCrewLLM"]
