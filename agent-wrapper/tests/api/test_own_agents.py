"""The user's own agents through the real app: crews of both layouts with their tools
and placeholders, a graph from a factory, and a graph that asks for input."""

import json
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import FIXTURE_AGENTS

WORD_INPUT = {"topic": "cats", "text": "a b c", "audience": "kids"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}


@pytest.fixture
def agents_client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(agents_file=FIXTURE_AGENTS)


def by_parent(spans) -> dict:
    ids = {s.context.span_id: s for s in spans}
    return {s.name: ids.get(s.parent.span_id).name if s.parent and s.parent.span_id in ids
            else None for s in spans}


def test_agents_route_lists_builtins_and_the_registry(agents_client: TestClient) -> None:
    listing = agents_client.get("/v1/agents").json()["agents"]
    assert [a["name"] for a in listing] == ["crew", "graph", "word_crew", "slogan_crew",
                                            "summary", "approval"]
    only = agents_client.get("/v1/agents", params={"framework": "langgraph"}).json()["agents"]
    assert {a["framework"] for a in only} == {"langgraph"}
    approval = next(a for a in listing if a["name"] == "approval")
    assert approval["can_request_input"] and approval["llm"] == "wrapper"
    assert approval["input_schema"]["required"] == ["amount"]


def test_a_classic_crew_fills_placeholders_and_calls_its_tool_in_a_traced_step(
        agents_client: TestClient, spans) -> None:
    reply = agents_client.post("/v1/run_crew", json={
        "goal": "Count", "agent": "word_crew", "input_data": WORD_INPUT})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["agent"] == "word_crew" and body["status"] == "completed"
    assert body["interrupt"] is None
    assert [s["name"] for s in body["steps"]] == ["count_task", "report_task"]
    assert [s["agent"] for s in body["steps"]] == ["cats word counter", "kids reporter"]
    # {topic}, {text} and {audience} were filled exactly as kickoff(inputs=...) does.
    assert "Count the words of this text about cats: a b c" in body["steps"][0]["output"]
    assert "tools said: 11 words" in body["steps"][0]["output"]
    # Three LLM calls: the tool call, the answer after it, the reporter's answer.
    assert reply.headers["x-agent-wrapper-llm-calls"] == "3"
    parents = by_parent(spans.get_finished_spans())
    assert parents["word_count.run"] == "cats word counter.count_task.execute"
    assert parents["cats word counter.count_task.execute"] == "WordCrew.kickoff"
    assert parents["WordCrew.kickoff"] == "CrewAI_Execution"


def test_a_json_crew_runs_on_the_configured_model_with_its_custom_tool(
        agents_client: TestClient, spans) -> None:
    # Its agents name openai/gpt-4o-mini; with no network and no key only the wrapper's
    # offline model can answer, and every LLM span says which model ran.
    reply = agents_client.post("/v1/run_crew", json={
        "goal": "Slogan", "agent": "slogan_crew", "input_data": {"product": "tea"}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [s["name"] for s in body["steps"]] == ["draft", "polish"]
    assert "Polish the slogan for tea in a calm tone" in body["output"]  # default input
    assert "DRAFT A SLOGAN FOR TEA" in body["steps"][0]["output"]  # the shout tool's answer
    models = {s.attributes.get("llm.model_name") for s in spans.get_finished_spans()
              if s.attributes.get("openinference.span.kind") == "LLM"}
    assert models == {"offline-deterministic"}


@pytest.mark.parametrize("body, status, code, text", [
    ({"agent": "word_crew", "input_data": {"topic": "t", "text": "x"}}, 422, "invalid_input",
     "input_data.audience is required"),
    ({"agent": "word_crew", "input_data": {**WORD_INPUT, "topic": None}}, 422,
     "invalid_input", "input_data.topic must not be null"),
    ({"agent": "ghost"}, 404, "agent_not_found", "crew, slogan_crew, word_crew"),
    ({"agent": "approval"}, 404, "agent_not_found", "is a langgraph agent"),
    ({"agent": "../etc"}, 422, "invalid_input", "agent must be"),
])
def test_bad_agent_or_input_is_refused_before_anything_runs(
        agents_client: TestClient, body: dict, status: int, code: str, text: str) -> None:
    reply = agents_client.post("/v1/run_crew", json={"goal": "g", **body})
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code
    assert text in reply.json()["error"]["message"]
    assert reply.headers.get("x-agent-wrapper-llm-calls") in (None, "0")


def test_a_graph_given_as_a_factory_gets_its_input_and_the_goal_as_message(
        agents_client: TestClient) -> None:
    reply = agents_client.post("/v1/run_graph", json={
        "goal": "Summarize the news", "agent": "summary", "input_data": {"topic": "otters"}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["agent"] == "summary" and [s["name"] for s in body["steps"]] == ["summarize"]
    assert body["messages"][0] == {"role": "user", "content": "Summarize the news"}
    assert "Summarize the news" in body["output"]
    bad = agents_client.post("/v1/run_graph", json={
        "goal": "g", "agent": "summary", "input_data": {"topic": "t", "words": "many"}})
    assert bad.status_code == 422 and "input_data.words" in bad.json()["error"]["message"]


def test_an_interrupt_asks_for_input_and_resume_finishes_the_graph_in_one_trace(
        agents_client: TestClient, spans) -> None:
    body = {"goal": "France", "agent": "approval", "input_data": {"amount": 300},
            "federation_session_id": "hitl-1"}
    asked = agents_client.post("/v1/run_graph", json=body, headers=TRACEPARENT)
    assert asked.status_code == 200, asked.text
    reply = asked.json()
    assert reply["status"] == "input_required"
    assert reply["interrupt"] == {"question": "Approve spending 300?", "amount": 300}
    # approve stopped at interrupt(): not a finished step yet.
    assert [s["name"] for s in reply["steps"]] == ["research", "tools", "research"]
    assert "tools said: Paris" in reply["output"]
    assert reply["history"] == [], "a run waiting for input is not finished"
    parents = by_parent(spans.get_finished_spans())
    assert parents["lookup_capital"] == "tools"

    # The same request again: the same question, nothing runs.
    again = agents_client.post("/v1/run_graph", json=body)
    assert again.json()["interrupt"] == reply["interrupt"]
    assert again.headers["x-agent-wrapper-llm-calls"] == "0"
    # Another request must answer first; a crew on the same session is unaffected.
    other = agents_client.post("/v1/run_graph", json={**body, "goal": "Italy"})
    assert other.status_code == 412 and other.json()["error"]["code"] == "input_required"

    spans.clear()
    done = agents_client.post("/v1/run_graph", headers=TRACEPARENT, json={
        "goal": "France", "agent": "approval", "federation_session_id": "hitl-1",
        "resume": {"approved": True}})
    assert done.status_code == 200, done.text
    final = done.json()
    assert final["status"] == "completed" and final["output"] == "Spending 300 approved."
    assert final["trace_id"] == reply["trace_id"] == TRACE
    assert done.headers["x-agent-wrapper-llm-calls"] == "0"  # approve calls no model
    assert [(s["name"], s["resumed_from_checkpoint"]) for s in final["steps"]] == [
        ("research", True), ("tools", True), ("research", True), ("approve", False)]
    assert [h["agent"] for h in final["history"]] == ["approval"]
    assert {s.context.trace_id for s in spans.get_finished_spans()} == {int(TRACE, 16)}

    nothing = agents_client.post("/v1/run_graph", json={
        "goal": "France", "agent": "approval", "federation_session_id": "hitl-1",
        "resume": True})
    assert nothing.status_code == 412
    assert nothing.json()["error"]["code"] == "no_pending_interrupt"


def test_a_crew_never_waits_for_input_so_resume_is_refused(agents_client: TestClient) -> None:
    reply = agents_client.post("/v1/run_crew", json={"goal": "g", "resume": "yes"})
    assert reply.status_code == 412
    assert reply.json()["error"]["code"] == "no_pending_interrupt"


def test_tool_calls_stream_as_events_with_input_and_output(make_app, serve) -> None:
    base = serve(make_app(agents_file=FIXTURE_AGENTS))
    body = {"goal": "France", "agent": "approval", "input_data": {"amount": 5},
            "federation_session_id": "ev-1"}
    with httpx.stream("POST", base + "/v1/run_graph", json=body,
                      headers={"accept": "application/x-ndjson"}, timeout=120) as reply:
        events = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    tools = [e["data"] for e in events if e["type"] == "tool_call"]
    assert len(tools) == 1
    assert tools[0]["tool"] == "lookup_capital" and tools[0]["step"] == "tools"
    assert tools[0]["output"] == "Paris" and tools[0]["call_id"].startswith("call_")
    assert "France" in tools[0]["input"]
    final = events[-1]
    assert final["type"] == "completed"
    assert final["data"]["reply"]["status"] == "input_required"


def test_a_run_record_of_an_interrupted_run_is_input_required_and_replays(
        agents_client: TestClient) -> None:
    body = {"goal": "France", "agent": "approval", "input_data": {"amount": 7},
            "federation_session_id": "rec-1", "request_id": "r-1"}
    first = agents_client.post("/v1/run_graph", json=body)
    assert first.json()["status"] == "input_required"
    record = agents_client.get("/v1/sessions/rec-1/runs/r-1").json()
    assert record["status"] == "input_required" and record["agent"] == "approval"
    assert record["result"]["interrupt"]["amount"] == 7
    replay = agents_client.post("/v1/run_graph", json=body)
    assert replay.headers["x-agent-wrapper-replayed"] == "true"
    assert replay.json()["interrupt"] == first.json()["interrupt"]
