"""A LangGraph app written as LangGraph's docs write one: state keys the graph fills
itself are optional input (as LangGraph's own server takes them), types are still
checked, and an agent that brings its own model is reported as such."""

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_wrapper.agents import load_registry
from agent_wrapper.core.errors import InvalidInput
from tests.fixtures.fake_openai import REPLY, FakeOpenAI
from tests.frameworks.conftest import AS_DOCUMENTED


def test_state_keys_the_graph_fills_are_optional_input_with_types_checked(
        provider: FakeOpenAI) -> None:
    registry = load_registry(AS_DOCUMENTED)
    for name in ("support", "support_own"):
        agent = registry.resolve("langgraph", name)
        schema = agent.describe()["input_schema"]
        assert {"messages", "order_id", "team", "priority"} <= set(schema["properties"])
        assert schema["required"] == []
        agent.check_input({}, "Where is order 42?", "")
        agent.check_input({"order_id": "42", "team": "billing"}, "g", "")
        with pytest.raises(InvalidInput, match=r"input_data\.priority .*valid string"):
            agent.check_input({"priority": 3}, "g", "")
        with pytest.raises(InvalidInput, match=r"input_data\.order_id .*valid string"):
            agent.check_input({"order_id": None}, "g", "")


def _write_graph(tmp_path: Path, body: str) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "app.py").write_text(textwrap.dedent(body))
    (tmp_path / "app" / "langgraph.json").write_text('{"graphs": {"g": "./app.py:graph"}}')
    path = tmp_path / "agents.toml"
    path.write_text('[agents.g]\nframework = "langgraph"\nconfig = "app/langgraph.json"\n')
    return path


def test_a_pydantic_state_and_an_explicit_input_schema_keep_their_required_keys(
        tmp_path: Path) -> None:
    # LangGraph itself refuses a pydantic state without its required fields.
    path = _write_graph(tmp_path, """
        from pydantic import BaseModel
        from langgraph.graph import StateGraph, START, END

        class State(BaseModel):
            ticket: str
            notes: str = ""

        builder = StateGraph(State)
        builder.add_node("note", lambda state: {"notes": state.ticket})
        builder.add_edge(START, "note")
        builder.add_edge("note", END)
        graph = builder.compile()
        """)
    agent = load_registry(path).resolve("langgraph", "g")
    assert agent.describe()["input_schema"]["required"] == ["ticket"]
    with pytest.raises(InvalidInput, match=r"input_data\.ticket is required"):
        agent.check_input({"notes": "x"}, "g", "")
    agent.check_input({"ticket": "T-1"}, "g", "")


def test_the_agents_route_shows_the_optional_keys(
        make_client: Callable[..., TestClient], provider: FakeOpenAI) -> None:
    client = make_client(agents_file=AS_DOCUMENTED)
    agents = {a["name"]: a for a in client.get("/v1/agents").json()["agents"]}
    assert agents["support"]["input_schema"]["required"] == []
    assert agents["support"]["llm"] == "wrapper" and agents["support_own"]["llm"] == "own"


def test_a_graph_with_its_own_model_runs_on_it_called_with_only_messages_and_says_so(
        make_client: Callable[..., TestClient], provider: FakeOpenAI, spans) -> None:
    client = make_client(agents_file=AS_DOCUMENTED)
    reply = client.post("/v1/run_graph", json={
        "goal": "Where is the refund for order 42?", "agent": "support_own"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [s["name"] for s in body["steps"]] == ["triage", "respond"]
    assert body["output"] == REPLY
    # Its own ChatOpenAI (from the factory) reached the provider it was built with,
    # with the keys the graph filled itself.
    assert len(provider.calls) == 1
    system = provider.calls[0].body["messages"][0]["content"]
    assert "billing team of Acme support" in system and "Order 42, priority high" in system
    assert body["llm"] == {"provider": "own", "model": "own"}
    execution = next(s for s in spans.get_finished_spans() if s.name == "LangGraph_Execution")
    assert execution.attributes["llm.provider"] == "own"
    assert execution.attributes["llm.model_name"] == "own"


def test_a_wrong_type_is_refused_before_anything_runs(
        make_client: Callable[..., TestClient], provider: FakeOpenAI) -> None:
    client = make_client(agents_file=AS_DOCUMENTED)
    reply = client.post("/v1/run_graph", json={
        "goal": "g", "agent": "support_own", "input_data": {"priority": ["high"]}})
    assert reply.status_code == 422
    assert "input_data.priority" in reply.json()["error"]["message"]
    assert provider.calls == []
