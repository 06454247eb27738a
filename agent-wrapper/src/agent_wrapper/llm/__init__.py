"""LLM selection: the configured model for CrewAI and for LangGraph, nothing else.

Every framework object gets its LLM passed explicitly from here, so no agent can
fall back to a provider that was not configured.
"""

from dataclasses import dataclass, field
from typing import Any

from agent_wrapper.core.config import Settings
from agent_wrapper.llm.offline import (
    OFFLINE_MODEL,
    CallCounter,
    OfflineChatModel,
    OfflineCrewLLM,
)


@dataclass
class LLMBundle:
    """The LLM objects of one request plus what the reply reports about them."""

    provider: str  # "offline" | "openai-compatible"
    model: str
    counter: CallCounter = field(default_factory=CallCounter)

    def describe(self) -> dict[str, str]:
        return {"provider": self.provider, "model": self.model}


class LLMFactory:
    """Builds fresh per-request LLM objects from the settings (tests may subclass)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def bundle(self) -> LLMBundle:
        if self.settings.llm_provider == "openai":
            return LLMBundle("openai-compatible", str(self.settings.llm_model))
        return LLMBundle("offline", OFFLINE_MODEL)

    def crewai_llm(self, bundle: LLMBundle) -> Any:
        if self.settings.llm_provider == "openai":
            from crewai import LLM

            return LLM(
                model=f"openai/{self.settings.llm_model}",
                base_url=self.settings.llm_base_url,
                api_key=self._api_key(),
                timeout=self.settings.llm_timeout_seconds,
                max_retries=self.settings.llm_max_retries,
            )
        # BaseLLM validates `model` at construction: pass it explicitly.
        return OfflineCrewLLM(model=OFFLINE_MODEL, counter=bundle.counter)

    def chat_model(self, bundle: LLMBundle) -> Any:
        if self.settings.llm_provider == "openai":
            from langchain_openai import ChatOpenAI

            return ChatOpenAI(
                model=str(self.settings.llm_model),
                base_url=self.settings.llm_base_url,
                api_key=self._api_key(),
                timeout=self.settings.llm_timeout_seconds,
                max_retries=self.settings.llm_max_retries,
            )
        return OfflineChatModel(counter=bundle.counter)

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


__all__ = ["OFFLINE_MODEL", "CallCounter", "LLMBundle", "LLMFactory", "OfflineChatModel",
           "OfflineCrewLLM"]
