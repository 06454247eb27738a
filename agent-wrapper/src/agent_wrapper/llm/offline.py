"""The offline deterministic model ``offline-deterministic`` for both frameworks.

It needs no network and no weights: each answer is derived from the prompt it
gets (the task / question it finds there plus a short digest of the whole
prompt), so the same prompt always gives the same answer and different prompts
give different ones. Both classes count their calls so tests can prove that a
resumed run did not redo a checkpointed step.
"""

import hashlib
import re
import threading
from typing import Any

from crewai import BaseLLM
from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import llm_call_context
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

OFFLINE_MODEL = "offline-deterministic"


class CallCounter:
    """A thread-safe call counter shared by the LLM objects of one request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def increment(self) -> int:
        with self._lock:
            self._value += 1
            return self._value

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _first_line(text: str, limit: int = 160) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _as_text(messages: Any) -> list[tuple[str, str]]:
    if isinstance(messages, str):
        return [("user", messages)]
    pairs = []
    for message in messages:
        if isinstance(message, dict):
            pairs.append((str(message.get("role", "user")), str(message.get("content", ""))))
        else:
            pairs.append((getattr(message, "type", "user"), str(message.content)))
    return pairs


def offline_answer(messages: Any) -> str:
    """Derive a deterministic one-paragraph answer from a chat prompt."""
    pairs = _as_text(messages)
    prompt = "\n".join(f"{role}: {content}" for role, content in pairs)
    system = next((c for r, c in pairs if r == "system"), "")
    user = next((c for r, c in reversed(pairs) if r in ("user", "human")), prompt)
    role_match = re.search(r"You are ([^.\n]+)", system)
    role = role_match.group(1).strip() if role_match else "assistant"
    task_match = re.search(r"Current Task:\s*(.+)", user)
    task = _first_line(task_match.group(1) if task_match else user)
    context_match = re.search(r"context you're working with:\s*(.+?)(?:\n\n|$)", user, re.S)
    answer = f"[{OFFLINE_MODEL} {_digest(prompt)}] {role} on: {task}"
    if context_match:
        answer += f" | building on: {_first_line(context_match.group(1), 120)}"
    return answer


class OfflineCrewLLM(BaseLLM):
    """CrewAI LLM answering in CrewAI's ReAct format, ending with "Final Answer:"."""

    llm_type: str = "offline"
    model: str = OFFLINE_MODEL
    provider: str = "offline"
    counter: CallCounter = Field(default_factory=CallCounter, exclude=True)

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        # Emit the same events as crewai's native providers so the OpenInference
        # event listener records an LLM span for this call.
        with llm_call_context():
            self._emit_call_started_event(messages=messages, tools=tools, callbacks=callbacks,
                                          available_functions=available_functions,
                                          from_task=from_task, from_agent=from_agent)
            self.counter.increment()
            text = (
                "Thought: I now know the final answer\n"
                f"Final Answer: {offline_answer(messages)}"
            )
            self._emit_call_completed_event(response=text, call_type=LLMCallType.LLM_CALL,
                                            from_task=from_task, from_agent=from_agent,
                                            messages=messages)
            return text

    def supports_function_calling(self) -> bool:
        # Plain-text ReAct: the answer parser needs no tool-calling API.
        return False

    def supports_stop_words(self) -> bool:
        return False

    def get_context_window_size(self) -> int:
        return 32_000


class OfflineChatModel(BaseChatModel):
    """LangChain chat model with the same deterministic derivation."""

    model_name: str = OFFLINE_MODEL
    counter: CallCounter = Field(default_factory=CallCounter, exclude=True)

    model_config = {"arbitrary_types_allowed": True}

    @property
    def _llm_type(self) -> str:
        return OFFLINE_MODEL

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.counter.increment()
        message = AIMessage(content=offline_answer(messages))
        return ChatResult(generations=[ChatGeneration(message=message)])
