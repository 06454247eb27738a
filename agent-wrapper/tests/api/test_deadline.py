"""x-federation-deadline-ms: a run past its deadline stops at the next step boundary
(504, no further LLM call, state kept, record failed and retryable); bad values 400."""

import time

import pytest
from fastapi.testclient import TestClient

from tests.conftest import StepGate

CASES = [("/v1/run_crew", "research", "write"), ("/v1/run_graph", "plan", "respond")]
# Long enough for the first step even on a busy machine; the gate then waits it out.
DEADLINE_MS = 3000


@pytest.mark.parametrize("route, first, second", CASES)
def test_deadline_passing_mid_run_is_504_and_keeps_state(
        make_client, gate: StepGate, route: str, first: str, second: str) -> None:
    def wait_out_the_deadline(boundary) -> None:
        time.sleep(max(0.0, boundary.deadline_left_s or 0.0) + 0.05)

    gate.action = wait_out_the_deadline
    client = make_client(step_hook=gate)
    body = {"goal": "Slow task", "federation_session_id": "dl-1", "request_id": "d-1"}
    reply = client.post(route, json=body, headers={"x-federation-deadline-ms": str(DEADLINE_MS)})

    assert reply.status_code == 504, reply.text
    error = reply.json()["error"]
    assert error["code"] == "deadline_exceeded"
    assert "deadline" in error["message"]
    assert gate.boundaries[0].deadline_left_s is not None
    assert [b.name for b in gate.boundaries if b.kind == "checkpoint"] == [first]
    assert reply.headers["x-agent-wrapper-llm-calls"] == "1", "no LLM call after the deadline"
    status = client.get("/v1/sessions/dl-1/runs/d-1").json()
    assert status["status"] == "failed"
    assert status["error"]["status"] == 504
    assert status["progress"]["steps"] == [first]

    # A failed run may be retried by the same request: it runs again from the
    # saved state (only the second step calls the model).
    retry = client.post(route, json=body)
    assert retry.status_code == 200, retry.text
    assert "x-agent-wrapper-replayed" not in retry.headers
    assert retry.headers["x-agent-wrapper-llm-calls"] == "1"
    assert [s["resumed_from_checkpoint"] for s in retry.json()["steps"]] == [True, False]
    record = client.get("/v1/sessions/dl-1/runs/d-1").json()
    assert (record["status"], record["attempt"]) == ("completed", 2)
    assert record["progress"]["steps"] == [first, second]


def test_expired_deadline_stops_before_any_llm_call(client: TestClient) -> None:
    reply = client.post("/v1/run_crew", json={"goal": "late", "federation_session_id": "dl-2"},
                        headers={"x-federation-deadline-ms": "0"})
    assert reply.status_code == 504, reply.text
    assert reply.headers["x-agent-wrapper-llm-calls"] == "0"
    # Nothing finished, nothing recorded as finished.
    document = client.app.state.wrapper.store.load("dl-2")
    assert document is None or document["run_count"] == 0


def test_step_delay_setting_outlasts_a_short_deadline(make_client) -> None:
    """The TEST-ONLY step delay (AGENT_WRAPPER_TEST_STEP_DELAY_MS) makes a run slower
    than a short deadline without any hook."""
    client = make_client(test_step_delay_ms=300)
    reply = client.post("/v1/run_graph", json={"goal": "slow", "federation_session_id": "dl-3"},
                        headers={"x-federation-deadline-ms": "200"})
    assert reply.status_code == 504, reply.text
    assert reply.headers["x-agent-wrapper-llm-calls"] == "0"


@pytest.mark.parametrize("headers", [
    {"x-federation-deadline-ms": "soon"},
    {"x-federation-deadline-ms": "-5"},
    {"x-federation-deadline-ms": "1.5"},
    {"x-federation-deadline-ms": ""},
    {"x-federation-deadline-ms": "9" * 13},
    [("x-federation-deadline-ms", "100"), ("x-federation-deadline-ms", "200")],
    {"prefer": "respond-async", "accept": "application/x-ndjson"},
])
@pytest.mark.parametrize("route", ["/v1/run_crew", "/v1/run_graph"])
def test_bad_run_headers_are_400(client: TestClient, route: str, headers) -> None:
    reply = client.post(route, json={"goal": "x", "federation_session_id": "bad-h",
                                     "request_id": "h-1"}, headers=headers)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "bad_request"
    # Refused before anything started: no record, no state.
    assert client.get("/v1/sessions/bad-h/runs/h-1").status_code == 404
    assert client.app.state.wrapper.store.load("bad-h") is None
