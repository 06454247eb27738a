"""The offline deterministic model ``offline-deterministic`` for both frameworks.

It needs no network and no weights: each answer is derived from the prompt it
gets (the task / question it finds there plus a short digest of the whole
prompt), so the same prompt always gives the same answer and different prompts
give different ones. Both classes count their calls so tests can prove that a
resumed run did not redo a checkpointed step.

Tools: when the prompt offers tools, the model calls each offered tool once, in the
order offered, before it answers (CrewAI: a ReAct ``Action:`` naming the tool;
LangChain: an ``AIMessage`` with ``tool_calls`` after ``bind_tools``). Arguments are
derived from the tool's JSON Schema and the current task, so a test proves the
whole tool path (call, span, progress event, observation) with no network.
"""

import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from crewai import BaseLLM
from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import llm_call_context
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
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


def usage(prompt_chars: int, completion_chars: int) -> dict[str, int]:
    """Token counts for an offline call: about four characters a token (what crewai
    itself assumes without a tokenizer), so spans and progress events carry usage."""
    prompt, completion = max(1, prompt_chars // 4), max(1, completion_chars // 4)
    return {"input_tokens": prompt, "output_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens": prompt, "completion_tokens": completion}


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
    # The task is stated once, in the first user turn; later turns (tool results) follow.
    task_match = next((m for _, c in pairs if (m := re.search(r"Current Task:\s*(.+)", c))),
                      None)
    task = _first_line(task_match.group(1) if task_match else user)
    context_match = re.search(r"context you're working with:\s*(.+?)(?:\n\n|$)", user, re.S)
    answer = f"[{OFFLINE_MODEL} {_digest(prompt)}] {role} on: {task}"
    if context_match:
        answer += f" | building on: {_first_line(context_match.group(1), 120)}"
    # A human's feedback on the last draft (crewai's feedback_instructions).
    if feedback := re.match(r"User feedback:\s*(.+)", user):
        answer += f" | revised for feedback: {_first_line(feedback.group(1), 120)}"
    return answer


def example_arguments(schema: dict[str, Any], task: str) -> dict[str, Any]:
    """Deterministic arguments for a tool's JSON Schema: the task's text for strings."""
    values: dict[str, Any] = {}
    properties = schema.get("properties") or {}
    for name in schema.get("required") or list(properties):
        kind = (properties.get(name) or {}).get("type", "string")
        values[name] = {"integer": 1, "number": 1.0, "boolean": True, "array": [],
                        "object": {}}.get(kind, task)
    return values


def _first_mentioned(values: list[Any], prompt: str) -> Any:
    """The allowed value the prompt mentions first (e.g. the outcome a feedback names)."""
    lowered = prompt.lower()
    found = [(lowered.find(str(v).lower()), i) for i, v in enumerate(values)
             if str(v).lower() in lowered]
    return values[min(found)[1]] if found else values[0]


def _fill(schema: dict[str, Any], prompt: str, defs: dict[str, Any], text: str) -> Any:
    if "$ref" in schema:
        schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
    if "enum" in schema:
        return _first_mentioned(list(schema["enum"]), prompt)
    if "const" in schema:
        return schema["const"]
    if "properties" in schema:
        return {name: _fill(sub, prompt, defs, text)
                for name, sub in schema["properties"].items()}
    return {"integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}.get(
        str(schema.get("type")), text)


def structured_answer(response_model: Any, messages: Any) -> str:
    """A JSON answer that fits ``response_model`` (crewai's structured output): text
    fields get the plain answer, a choice the option the prompt mentions first."""
    schema = response_model.model_json_schema()
    prompt = "\n".join(content for _, content in _as_text(messages))
    return json.dumps(_fill(schema, prompt, schema.get("$defs", {}), offline_answer(messages)))


def _react_tools(system: str) -> list[tuple[str, dict[str, Any]]]:
    """The tools a CrewAI ReAct prompt offers: ``Tool Name:`` / ``Tool Arguments:``."""
    tools = []
    for match in re.finditer(r"Tool Name: (.+?)\nTool Arguments: (.+?)\nTool Description:",
                             system, re.S):
        try:
            schema = json.loads(match.group(2))
        except ValueError:
            schema = {}
        tools.append((match.group(1).strip(), schema if isinstance(schema, dict) else {}))
    return tools


def _observations(messages: Any) -> list[str]:
    """Tool results CrewAI appended to the conversation (``Observation: ...``)."""
    return [part.strip() for _, content in _as_text(messages)[1:]
            for part in re.findall(r"Observation:(.*?)(?:\nThought:|$)", content, re.S)
            if part.strip()]


def _crew_reply(messages: Any) -> str:
    pairs = _as_text(messages)
    system = next((c for r, c in pairs if r == "system"), "")
    tools, seen = _react_tools(system), _observations(messages)
    if len(seen) < len(tools):
        name, schema = tools[len(seen)]
        task = _first_line(re.sub(r"^.*Current Task:\s*", "", pairs[-1][1] if pairs else "",
                                  flags=re.S))
        return (f"Thought: I should use the {name} tool\nAction: {name}\n"
                f"Action Input: {json.dumps(example_arguments(schema, task))}")
    answer = offline_answer(messages)
    if seen:
        answer += " | tools said: " + "; ".join(_first_line(text, 80) for text in seen)
    return f"Thought: I now know the final answer\nFinal Answer: {answer}"


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
            text = (_crew_reply(messages) if response_model is None
                    else structured_answer(response_model, messages))
            counts = usage(sum(len(content) for _, content in _as_text(messages)), len(text))
            # What crewai's own providers do: the usage tracker is where crewai (and the
            # OpenInference listener) read token counts from.
            self._track_token_usage_internal(counts)
            self._emit_call_completed_event(response=text, call_type=LLMCallType.LLM_CALL,
                                            from_task=from_task, from_agent=from_agent,
                                            messages=messages, usage=counts)
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
    # OpenAI-style tool specs from ``bind_tools`` (name, JSON Schema).
    tools: list[dict[str, Any]] = Field(default_factory=list)

    model_config = {"arbitrary_types_allowed": True}

    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """The same model, offering ``tools`` (it calls each once, then answers)."""
        specs = [convert_to_openai_tool(tool)["function"] for tool in tools]
        return self.model_copy(update={"tools": specs, "counter": self.counter})

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
        message = self._reply(messages)
        counts = usage(sum(len(str(m.content)) for m in messages),
                       len(str(message.content)) + len(str(message.tool_calls or "")))
        message.usage_metadata = {key: counts[key]
                                  for key in ("input_tokens", "output_tokens", "total_tokens")}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)),
                         default=-1)
        results = [m for m in messages[last_human + 1:] if isinstance(m, ToolMessage)]
        if len(results) < len(self.tools):
            spec = self.tools[len(results)]
            task = _first_line(str(messages[last_human].content)) if last_human >= 0 else ""
            call_id = f"call_{_digest(spec['name'] + task + str(len(results)))}"
            return AIMessage(content="", tool_calls=[{
                "name": spec["name"], "id": call_id, "type": "tool_call",
                "args": example_arguments(spec.get("parameters") or {}, task)}])
        answer = offline_answer(messages)
        if results:
            answer += " | tools said: " + "; ".join(_first_line(str(m.content), 80)
                                                     for m in results)
        return AIMessage(content=answer)
