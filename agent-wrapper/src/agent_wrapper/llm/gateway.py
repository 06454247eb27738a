"""The model gateway: the platform's model for agent code that builds its own client.

Nearly every LangGraph app builds its own ``ChatOpenAI(...)`` or
``init_chat_model("openai:...")``, and CrewAI code its own ``LLM("openai/...")`` or
``openai.OpenAI()``; all of them read ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. So each
wrapper process serves an OpenAI-compatible endpoint on loopback
(``POST /v1/chat/completions``, tool calls, ``stream: true``) and points agent code at
it: at start, before any agent module is imported, ``OPENAI_BASE_URL`` (and the legacy
``OPENAI_API_BASE``) name the gateway and ``OPENAI_API_KEY`` is a random per-process
token, never a provider's key.

A call belongs to the run that made it: each run carries a W3C baggage entry
(``federation.run``) that the httpx instrumentation sends with the trace, so the
gateway finds the run, and a call no run made is refused. For a run on the
platform's model the call is answered by the configured model (the offline model in
tests), inside a GenAI span (``chat <model>``) under the caller's span, with its token
counts in the run's ``llm_call`` events and reply (``llm.gateway``); the run's cancel
and deadline apply to each call. The span's parent is the caller's HTTP client span: for
a graph under the node that called (its span is made current while its model runs); for
CrewAI (whose OpenInference spans are built from events, never current) under the
execution span, the step named by ``federation.step``. A run of an agent that brings its own model
(``llm = "own"``) is passed through to the endpoint and key the process had before
(its own provider, as if the gateway were not there).

The Rust host will serve this endpoint for every process it runs; this one keeps the
wrapper correct on its own until then.
"""

import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from agent_wrapper.core.errors import WrapperError

log = logging.getLogger(__name__)

BAGGAGE_KEY = "federation.run"
# Marks answers the gateway gave, so framework observers that see the same call on the
# agent's side do not count it twice (the gateway reports it).
FINGERPRINT = "fp_agent_federation_gateway"
ENV_BASE_URLS = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
DEFAULT_OPENAI = "https://api.openai.com/v1"


@dataclass
class RunScope:
    """A run whose agent code may call the gateway."""

    agent: str
    own: bool
    factory: Any  # LLMFactory
    bundle: Any  # LLMBundle
    control: Any  # RunControl


class ModelGateway:
    """The process's gateway (one per process: ``instance()``)."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)
        self.url = ""
        self._runs: dict[str, RunScope] = {}
        self._mutex = threading.Lock()
        # The endpoint and key the process had before the gateway took their place:
        # where the calls of agents that bring their own model go.
        self.upstream_url = DEFAULT_OPENAI
        self.upstream_key: str | None = None

    # -- starting ------------------------------------------------------------------
    def start(self) -> None:
        import uvicorn

        from agent_wrapper.llm.gateway_app import build_app

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        server = uvicorn.Server(uvicorn.Config(build_app(self), log_level="warning",
                                               lifespan="off", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name="model-gateway", daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the model gateway did not start")
            time.sleep(0.01)
        log.info("model gateway for agent code at %s", self.url)

    def direct_agent_code(self) -> None:
        """Point agent code's OpenAI-compatible clients at the gateway (what the
        process environment named before becomes the upstream of ``own`` agents)."""
        current = os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
        if current != self.url:
            self.upstream_url = (current or DEFAULT_OPENAI).rstrip("/")
            self.upstream_key = os.environ.get("OPENAI_API_KEY")
        for name in ENV_BASE_URLS:
            os.environ[name] = self.url
        os.environ["OPENAI_API_KEY"] = self.token

    # -- runs ----------------------------------------------------------------------------
    @contextmanager
    def run_scope(self, scope: RunScope) -> Iterator[None]:
        """Calls made within this context (and the threads it spawns) are ``scope``'s."""
        key = uuid.uuid4().hex
        with self._mutex:
            self._runs[key] = scope
        token = otel_context.attach(baggage.set_baggage(BAGGAGE_KEY, key))
        try:
            yield
        finally:
            otel_context.detach(token)
            with self._mutex:
                self._runs.pop(key, None)

    def authorized(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                                  self.token.encode())

    def scope_of(self, headers: dict[str, str]) -> tuple[RunScope | None, Any]:
        """The run a call belongs to (from its baggage) and the caller's trace context."""
        ctx = propagate.extract(headers)
        key = baggage.get_baggage(BAGGAGE_KEY, ctx)
        with self._mutex:
            return self._runs.get(str(key)) if key else None, ctx


_instance: ModelGateway | None = None
_instance_lock = threading.Lock()


def instance() -> ModelGateway:
    """The process's gateway, started on first use."""
    global _instance
    with _instance_lock:
        if _instance is None:
            gateway = ModelGateway()
            gateway.start()
            _instance = gateway
        return _instance


@contextmanager
def serving(agent: Any, factory: Any, bundle: Any, control: Any) -> Iterator[None]:
    """What a runner wraps a run in: its agent code's calls reach the gateway as this
    run's (nothing to do when no gateway was started, e.g. executors used directly)."""
    if _instance is None:
        yield
        return
    scope = RunScope(agent=agent.name, own=agent.own_llm, factory=factory, bundle=bundle,
                     control=control)
    with _instance.run_scope(scope):
        yield


# -- answering on the platform's model ------------------------------------------------------
def _openai_message(message: Any) -> dict[str, Any]:
    calls = [{"id": call.get("id") or f"call_{uuid.uuid4().hex[:12]}", "type": "function",
              "function": {"name": call["name"], "arguments": json.dumps(call.get("args") or {})}}
             for call in (message.tool_calls or [])]
    content = message.content if isinstance(message.content, str) else json.dumps(
        message.content)
    reply: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
    if calls:
        reply["tool_calls"] = calls
    return reply


def _usage(message: Any, prompt_chars: int, completion_chars: int) -> dict[str, int]:
    meta = getattr(message, "usage_metadata", None) or {}
    prompt = int(meta.get("input_tokens") or max(1, prompt_chars // 4))
    completion = int(meta.get("output_tokens") or max(1, completion_chars // 4))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def complete(scope: RunScope, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """One chat completion on the platform's model, as OpenAI's API answers it. Raises
    ``WrapperError`` when the run may not call (cancel, deadline) or the model fails."""
    from langchain_core.messages import convert_to_messages

    from agent_wrapper.runs.executor import classify_error

    bundle, control = scope.bundle, scope.control
    requested = str(body.get("model") or "")
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": bundle.provider,
                  "gen_ai.request.model": requested, "gen_ai.response.model": bundle.model,
                  "federation.agent": scope.agent, "federation.gateway": True,
                  "federation.step": control.progress().current_step or ""}
    with trace.get_tracer("agent_wrapper.gateway").start_as_current_span(
            f"chat {bundle.model}", context=ctx, kind=SpanKind.SERVER,
            attributes=attributes, record_exception=False,
            set_status_on_exception=False) as span:
        try:
            control.before_llm_call(None)
            messages = convert_to_messages(body.get("messages") or [])
            model = scope.factory.chat_model(bundle)
            if body.get("tools"):
                model = model.bind_tools(body["tools"])
            message = model.invoke(messages)
        except Exception as exc:
            error = exc if isinstance(exc, WrapperError) else classify_error(exc, None)
            span.set_status(Status(StatusCode.ERROR, error.message))
            span.set_attribute("error.code", error.code)
            raise error from exc
        prompt_chars = sum(len(str(m.content)) for m in messages)
        reply = _openai_message(message)
        usage = _usage(message, prompt_chars, len(str(reply.get("content") or "")))
        span.set_attribute("gen_ai.usage.input_tokens", usage["prompt_tokens"])
        span.set_attribute("gen_ai.usage.output_tokens", usage["completion_tokens"])
        finish = "tool_calls" if reply.get("tool_calls") else "stop"
        span.set_attribute("gen_ai.response.finish_reasons", [finish])
    bundle.add_gateway_call(usage["prompt_tokens"], usage["completion_tokens"])
    step = control.progress().current_step
    control.llm_finished(step, prompt_chars, len(str(reply.get("content") or "")),
                         {"input_tokens": usage["prompt_tokens"],
                          "output_tokens": usage["completion_tokens"]})
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": bundle.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
            "usage": usage}


def stream_chunks(completion: dict[str, Any], include_usage: bool) -> Iterator[str]:
    """A finished completion as ``stream: true`` server-sent events (one content delta,
    one delta per tool call, the finish, the usage when asked, ``[DONE]``)."""
    base = {key: completion[key] for key in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]
    message = choice["message"]

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                 **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    yield event({"role": "assistant", "content": message.get("content") or ""})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield event({"tool_calls": [{"index": index, **call}]})
    yield event({}, choice["finish_reason"])
    if include_usage:
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': completion['usage']})}\n\n"
    yield "data: [DONE]\n\n"
