"""CrewAI ``human_input=True`` through the wrapper: the draft ends the run
INPUT_REQUIRED, ``resume`` is the feedback crewai would have read from the console
(it asks again after each revision, an empty answer accepts), nothing reads stdin."""

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.fake_openai import REPLY, FakeOpenAI
from tests.frameworks.conftest import AS_DOCUMENTED

ASK = {"goal": "Announce", "agent": "review_crew", "input_data": {"topic": "the new office"},
       "federation_session_id": "review-1"}


@pytest.fixture
def client(make_client: Callable[..., TestClient], provider: FakeOpenAI,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    def no_stdin(*args: object) -> str:
        raise AssertionError("the wrapper read stdin")

    monkeypatch.setattr("builtins.input", no_stdin)
    yield make_client(agents_file=AS_DOCUMENTED)
    # The crew runs on the wrapper's model: the process's provider saw nothing.
    assert provider.calls == []


def answer(client: TestClient, resume: object) -> dict:
    reply = client.post("/v1/run_crew", json={"goal": "Announce", "agent": "review_crew",
                                              "federation_session_id": "review-1",
                                              "resume": resume})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_agent_is_listed_as_one_that_asks(client: TestClient) -> None:
    agents = {a["name"]: a for a in client.get("/v1/agents").json()["agents"]}
    assert agents["review_crew"]["can_request_input"] is True
    assert agents["review_crew"]["input_schema"]["required"] == ["topic"]


def test_the_draft_is_asked_about_and_feedback_revises_it_until_accepted(
        client: TestClient) -> None:
    asked = client.post("/v1/run_crew", json=ASK)
    assert asked.status_code == 200, asked.text
    first = asked.json()
    assert first["status"] == "input_required" and first["steps"] == []
    question = first["interrupt"]
    assert question["type"] == "human_input" and question["task"] == "draft_task"
    assert question["agent"] == "Announcement writer" and question["round"] == 1
    assert "Draft an announcement about the new office" in question["draft"]
    assert first["output"] == question["draft"]
    assert asked.headers["x-agent-wrapper-llm-calls"] == "1"

    # The same request again: the same question, nothing runs; another must wait.
    again = client.post("/v1/run_crew", json=ASK)
    assert again.json()["interrupt"] == question
    assert again.headers["x-agent-wrapper-llm-calls"] == "0"
    other = client.post("/v1/run_crew", json={**ASK, "input_data": {"topic": "lunch"}})
    assert other.status_code == 412 and other.json()["error"]["code"] == "input_required"

    # Feedback: the task continues from its draft with it and asks again.
    revised = answer(client, "Mention the opening date")
    assert revised["status"] == "input_required"
    second = revised["interrupt"]
    assert second["round"] == 2 and second["task"] == "draft_task"
    assert "revised for feedback: Mention the opening date" in second["draft"]
    assert second["draft"] != question["draft"]

    # An empty answer accepts the draft: it is the task's output, the crew goes on.
    done = answer(client, "")
    assert done["status"] == "completed" and done["interrupt"] is None
    assert [(s["name"], s["output"] == second["draft"]) for s in done["steps"]] == [
        ("draft_task", True), ("publish_task", False)]
    assert "Publish the reviewed announcement" in done["output"]
    assert second["draft"][:60] in done["output"]  # the draft is the publisher's context
    assert [h["agent"] for h in done["history"]] == ["review_crew"]
    nothing = client.post("/v1/run_crew", json={**ASK, "resume": ""})
    assert nothing.status_code == 412
    assert nothing.json()["error"]["code"] == "no_pending_interrupt"


def test_a_resume_that_is_not_text_is_refused_and_the_question_stays(
        client: TestClient) -> None:
    assert client.post("/v1/run_crew", json=ASK).json()["status"] == "input_required"
    bad = client.post("/v1/run_crew", json={**ASK, "resume": {"approved": True}})
    assert bad.status_code == 422 and "resume must be a string" in bad.json()["error"]["message"]
    assert answer(client, None)["status"] == "completed"  # null accepts, like ""


def test_a_crew_with_its_own_model_runs_on_it_and_says_so(
        make_client: Callable[..., TestClient], provider: FakeOpenAI, spans) -> None:
    client = make_client(agents_file=AS_DOCUMENTED)
    agents = {a["name"]: a for a in client.get("/v1/agents").json()["agents"]}
    assert agents["review_crew_own"]["llm"] == "own"
    reply = client.post("/v1/run_crew", json={**ASK, "agent": "review_crew_own"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["llm"] == {"provider": "own", "model": "own"}
    assert body["interrupt"]["draft"] == REPLY  # its own provider wrote the draft
    assert provider.calls and all(call.headers["authorization"]
                                  == "Bearer sk-process-environment-key"
                                  for call in provider.calls)
    execution = next(s for s in spans.get_finished_spans() if s.name == "CrewAI_Execution")
    assert execution.attributes["llm.provider"] == "own"
