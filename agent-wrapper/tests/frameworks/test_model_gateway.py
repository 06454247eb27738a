"""The model gateway: agent code that builds its own OpenAI-compatible client, as
LangGraph's docs and crewai's write it, reaches the platform's model (never the
process's OPENAI_* provider), each call a GenAI span under the step that made it with
its tokens on the run; the provider's key stays out of agent code; an agent that
brings its own model keeps it."""

import json
import os
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from agent_wrapper.llm import gateway
from tests.fixtures.fake_openai import REPLY, FakeOpenAI, start_fake_openai
from tests.frameworks.conftest import AS_DOCUMENTED

REFUND = {"goal": "Where is the refund for order 42?"}


@pytest.fixture
def configured() -> Iterator[FakeOpenAI]:
    """A second provider: the one the wrapper is configured with."""
    fake = start_fake_openai()
    yield fake
    fake.stop()


def ancestors(spans, span) -> list[str]:
    by_id = {s.context.span_id: s for s in spans}
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


@pytest.mark.parametrize("agent", ["support", "support_factory"])
def test_a_graph_with_its_own_chat_openai_runs_on_the_platform_model(
        make_client: Callable[..., TestClient], provider: FakeOpenAI, spans,
        agent: str) -> None:
    client = make_client(agents_file=AS_DOCUMENTED)
    reply = client.post("/v1/run_graph", json={**REFUND, "agent": agent})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert provider.calls == [], "the process's OPENAI_BASE_URL saw a call"
    # The graph's own ChatOpenAI got the platform's (offline) model, with the keys the
    # graph filled itself in its prompt.
    assert body["output"].startswith("[offline-deterministic")
    assert "the billing team of Acme support" in body["output"]
    usage = body["llm"]["gateway"]
    assert body["llm"]["model"] == "offline-deterministic"
    assert usage["calls"] == 1 and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert reply.headers["x-agent-wrapper-llm-calls"] == "1"

    finished = spans.get_finished_spans()
    call = next(s for s in finished if s.name == "chat offline-deterministic")
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert call.attributes["gen_ai.usage.input_tokens"] == usage["input_tokens"]
    chain = ancestors(finished, call)
    assert "respond" in chain and "LangGraph_Execution" in chain, chain
    assert len({s.context.trace_id for s in finished
                if s.name in ("chat offline-deterministic", "LangGraph_Execution")}) == 1


def test_each_call_is_an_llm_call_event_with_its_tokens(
        make_app, serve, provider: FakeOpenAI) -> None:
    base = serve(make_app(agents_file=AS_DOCUMENTED))
    with httpx.stream("POST", base + "/v1/run_graph", json={**REFUND, "agent": "support"},
                      headers={"accept": "application/x-ndjson"}, timeout=120) as reply:
        events = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    calls = [e["data"] for e in events if e["type"] == "llm_call"]
    assert len(calls) == 1, calls  # once, though both the graph and the gateway saw it
    assert calls[0]["step"] == "respond" and calls[0]["input_tokens"] > 0
    assert events[-1]["type"] == "completed"
    assert events[-1]["data"]["reply"]["llm"]["gateway"]["calls"] == 1
    assert provider.calls == []


def test_init_chat_model_streaming_with_tool_calls_goes_through_the_gateway(
        make_client: Callable[..., TestClient], provider: FakeOpenAI) -> None:
    client = make_client(agents_file=AS_DOCUMENTED)
    reply = client.post("/v1/run_graph", json={"goal": "Status of order 7?",
                                               "agent": "lookup"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [s["name"] for s in body["steps"]] == ["agent", "tools", "agent"]
    assert "tools said: order" in body["output"] and "shipped yesterday" in body["output"]
    assert body["llm"]["gateway"]["calls"] == 2
    assert provider.calls == []


def test_the_configured_provider_answers_and_its_key_stays_out_of_agent_code(
        make_client: Callable[..., TestClient], provider: FakeOpenAI,
        configured: FakeOpenAI) -> None:
    client = make_client(agents_file=AS_DOCUMENTED, llm_provider="openai",
                         llm_base_url=configured.base_url, llm_model="served-model",
                         llm_api_key="sk-configured-secret")
    reply = client.post("/v1/run_graph", json={**REFUND, "agent": "support"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"] == REPLY
    assert provider.calls == []
    assert [c.body["model"] for c in configured.calls] == ["served-model"]
    assert configured.calls[0].headers["authorization"] == "Bearer sk-configured-secret"
    # What agent code sees: the gateway and its process token, not the provider's key.
    assert os.environ["OPENAI_API_KEY"] == gateway.instance().token != "sk-configured-secret"
    assert os.environ["OPENAI_BASE_URL"] == gateway.instance().url


def test_an_agent_with_its_own_model_keeps_the_process_provider_and_key(
        make_client: Callable[..., TestClient], provider: FakeOpenAI) -> None:
    client = make_client(agents_file=AS_DOCUMENTED)
    reply = client.post("/v1/run_graph", json={**REFUND, "agent": "support_own"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"] == REPLY
    assert len(provider.calls) == 1
    assert provider.calls[0].headers["authorization"] == "Bearer sk-process-environment-key"
    assert "gateway" not in reply.json()["llm"]


def test_calls_without_the_token_or_outside_a_run_are_refused(
        make_client: Callable[..., TestClient], provider: FakeOpenAI) -> None:
    make_client(agents_file=AS_DOCUMENTED)
    url = gateway.instance().url + "/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    no_token = httpx.post(url, json=body, headers={"authorization": "Bearer sk-guess"})
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "invalid_api_key"
    no_run = httpx.post(url, json=body,
                        headers={"authorization": f"Bearer {gateway.instance().token}"})
    assert no_run.status_code == 403 and no_run.json()["error"]["code"] == "no_active_run"
    assert provider.calls == []
