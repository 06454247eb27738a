"""CrewAI Flows through the wrapper, as a ``crewai create flow`` project writes them:
registered like a crew, ``kickoff(inputs=...)`` from ``input_data``, a step per method,
a router, a crew per branch on the wrapper's model, a human review answered through
``resume``, an unstructured state, and a killed run resumed at the next method."""

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from agent_wrapper.core.errors import ShuttingDown
from agent_wrapper.runs import Boundary
from tests.fixtures.fake_openai import FakeOpenAI
from tests.frameworks.conftest import AS_DOCUMENTED

REFUND = {"goal": "Handle the ticket", "agent": "support_flow",
          "input_data": {"ticket": "Where is my refund for order 42?", "priority": 2}}


@pytest.fixture
def client(make_client: Callable[..., TestClient], provider: FakeOpenAI,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    def no_stdin(*args: object) -> str:
        raise AssertionError("the wrapper read stdin")

    monkeypatch.setattr("builtins.input", no_stdin)
    yield make_client(agents_file=AS_DOCUMENTED)
    # The flow, its crews and the review's routing ran on the wrapper's model.
    assert provider.calls == []


def post(client: TestClient, body: dict, **extra: object) -> dict:
    reply = client.post("/v1/run_crew", json={**body, **extra})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_flows_are_listed_with_their_state_as_input(client: TestClient) -> None:
    agents = {a["name"]: a for a in client.get("/v1/agents").json()["agents"]}
    flow = agents["support_flow"]
    assert flow["framework"] == "crewai" and flow["can_request_input"] is True
    assert flow["description"].startswith("Routes a support ticket")
    assert {"ticket", "priority", "category", "handled_by"} <= set(flow["input_schema"]
                                                                   ["properties"])
    assert "id" not in flow["input_schema"]["properties"]
    assert agents["notes_flow"]["can_request_input"] is False
    assert agents["notes_flow"]["input_schema"]["additionalProperties"] is True


def test_a_wrong_state_type_is_refused_before_anything_runs(client: TestClient) -> None:
    reply = client.post("/v1/run_crew", json={**REFUND, "input_data": {"priority": "high"}})
    assert reply.status_code == 422
    assert "input_data.priority" in reply.json()["error"]["message"]
    bad_id = client.post("/v1/run_crew", json={**REFUND, "input_data": {"id": "mine"}})
    assert bad_id.status_code == 422


def test_the_router_picks_a_branch_and_the_review_answer_routes_the_rest(
        client: TestClient, spans) -> None:
    session = {"federation_session_id": "flow-1"}
    asked = post(client, REFUND, **session)
    assert asked["status"] == "input_required"
    assert [s["name"] for s in asked["steps"]] == ["classify", "route", "draft_billing_reply"]
    assert asked["steps"][1]["output"] == "billing"
    question = asked["interrupt"]
    assert question["type"] == "human_feedback" and question["method"] == "review"
    assert question["message"] == "Send this reply to the customer?"
    assert question["emit"] == ["approved", "rejected"]
    assert "Where is my refund for order 42?" in question["output"]  # the crew's draft
    assert "billing responder" in question["output"]

    again = client.post("/v1/run_crew", json={**REFUND, **session})
    assert again.json()["interrupt"] == question
    assert again.headers["x-agent-wrapper-llm-calls"] == "0"
    other = client.post("/v1/run_crew", json={**REFUND, **session, "input_data": {}})
    assert other.status_code == 412 and other.json()["error"]["code"] == "input_required"

    done = post(client, {"goal": "Handle the ticket", "agent": "support_flow"}, **session,
                resume="Looks good, approved")
    assert done["status"] == "completed"
    assert [(s["name"], s["resumed_from_checkpoint"]) for s in done["steps"]] == [
        ("classify", True), ("route", True), ("draft_billing_reply", True),
        ("review", False), ("send", False)]
    assert done["output"] == f"Sent: {question['output']}"
    assert [h["agent"] for h in done["history"]] == ["support_flow"]
    execution = [s for s in spans.get_finished_spans() if s.name == "CrewAI_Execution"]
    assert execution and execution[-1].attributes["llm.model_name"] == "offline-deterministic"


def test_the_other_branch_and_a_rejection(client: TestClient) -> None:
    body = {**REFUND, "input_data": {"ticket": "My screen is blank"},
            "federation_session_id": "flow-2"}
    asked = post(client, body)
    assert [s["name"] for s in asked["steps"]] == ["classify", "route", "draft_general_reply"]
    done = post(client, body, resume="No, rejected: too vague")
    assert [s["name"] for s in done["steps"]][-2:] == ["review", "escalate"]
    assert done["output"] == "Escalated (No, rejected: too vague)"


def test_an_unstructured_state_takes_any_input_and_direct_model_calls_reach_the_gateway(
        client: TestClient) -> None:
    # Its methods call crewai's LLM("openai/...") and the openai SDK themselves.
    done = post(client, {"goal": "Note", "agent": "notes_flow",
                         "input_data": {"subject": "otters"}},
                federation_session_id="notes-1", request_id="n-1")
    assert done["status"] == "completed"
    assert done["output"].startswith("1 note(s); summary: [offline-deterministic")
    assert "Summarize: note on otters: [offline-deterministic" in done["output"]
    assert [s["name"] for s in done["steps"]] == ["take_note", "summarize"]
    assert done["llm"]["gateway"]["calls"] == 2
    events = [json.loads(line) for line in client.get(
        "/v1/sessions/notes-1/runs/n-1/events").text.splitlines() if line.strip()]
    calls = [e["data"] for e in events if e["type"] == "llm_call"]
    assert [(c["step"], c["input_tokens"] > 0) for c in calls] == [
        ("take_note", True), ("summarize", True)], calls  # each call counted once


def test_resume_needs_a_waiting_flow_and_text(client: TestClient) -> None:
    nothing = client.post("/v1/run_crew", json={**REFUND, "resume": "yes"})
    assert nothing.status_code == 412
    assert nothing.json()["error"]["code"] == "no_pending_interrupt"
    session = {"federation_session_id": "flow-3"}
    post(client, REFUND, **session)
    bad = client.post("/v1/run_crew", json={**REFUND, **session, "resume": ["approved"]})
    assert bad.status_code == 422


def test_a_flow_stopped_between_methods_resumes_at_the_next_one(
        make_client: Callable[..., TestClient], provider: FakeOpenAI) -> None:
    def stop_after_the_draft(boundary: Boundary) -> None:
        at_draft = boundary.kind == "checkpoint" and boundary.name == "draft_billing_reply"
        if at_draft and not stopped:
            stopped.append(boundary)
            raise ShuttingDown("stopping between methods")

    stopped: list[Boundary] = []
    client = make_client(stop_after_the_draft, agents_file=AS_DOCUMENTED)
    body = {**REFUND, "federation_session_id": "stop-flow"}
    first = client.post("/v1/run_crew", json=body)
    assert first.status_code == 503 and first.json()["error"]["code"] == "shutting_down"
    again = client.post("/v1/run_crew", json=body)
    assert again.status_code == 200, again.text
    assert [(s["name"], s["resumed_from_checkpoint"]) for s in again.json()["steps"]] == [
        ("classify", True), ("route", True), ("draft_billing_reply", True)]
    assert again.json()["status"] == "input_required"
    assert again.headers["x-agent-wrapper-llm-calls"] == "0"  # the crew did not run again
    assert provider.calls == []


def test_a_killed_flow_resumes_at_the_next_method(wrapper_process, provider: FakeOpenAI,
                                                 tmp_path) -> None:
    env = {"AGENT_WRAPPER_AGENTS_FILE": str(AS_DOCUMENTED), "AGENT_WRAPPER_WORKERS": "1",
           "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "state")}
    body = {**REFUND, "federation_session_id": "crash-flow", "request_id": "r-1"}
    # Dies like a killed process right after the checkpoint of its third method.
    crashing = wrapper_process(**env, AGENT_WRAPPER_TEST_CRASH_AFTER_STEP="3")
    with pytest.raises(httpx.HTTPError):
        httpx.post(crashing.url("/v1/run_crew"), json=body, timeout=120)
    assert crashing.proc.wait(timeout=60) == 17, "died at the fault-injection point"

    healthy = wrapper_process(**env)
    reply = httpx.post(healthy.url("/v1/run_crew"), json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    asked = reply.json()
    assert asked["status"] == "input_required"
    # classify, route and the crew's draft finished before the kill: none ran again.
    assert [(s["name"], s["resumed_from_checkpoint"]) for s in asked["steps"]] == [
        ("classify", True), ("route", True), ("draft_billing_reply", True)]
    assert reply.headers["x-agent-wrapper-llm-calls"] == "0"
    done = httpx.post(healthy.url("/v1/run_crew"), timeout=120, json={
        "goal": "Handle the ticket", "agent": "support_flow",
        "federation_session_id": "crash-flow", "request_id": "r-2", "resume": ""})
    assert done.status_code == 200, done.text
    assert done.json()["steps"][-1]["name"] == "send"
    assert provider.calls == []
