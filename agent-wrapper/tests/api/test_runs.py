"""Status and cancel routes: cancel mid-run (one replica and across replicas through
Redis) stops at the next step boundary, no LLM call after it, state kept and resumable;
unknown runs 404, bad ids 400."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from agent_wrapper.runs import body_sha256
from tests.conftest import StepGate

CASES = [("/v1/run_crew", "research", "write"), ("/v1/run_graph", "plan", "respond")]
REQUEST = {"goal": "Migrate the billing queue", "context": "zero downtime",
           "input_data": {"queues": 3}}


def llm_spans(spans, trace_id: str) -> list:
    return [s for s in spans.get_finished_spans()
            if format(s.context.trace_id, "032x") == trace_id
            and s.attributes.get("openinference.span.kind") == "LLM"]


def traceparent() -> tuple[str, str]:
    trace_id = uuid.uuid4().hex
    return f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01", trace_id


@pytest.mark.parametrize("route, first, second", CASES)
def test_cancel_mid_run_stops_it_and_a_later_request_resumes(
        make_client, gate: StepGate, spans, route: str, first: str, second: str) -> None:
    client = make_client(step_hook=gate)
    header, trace_id = traceparent()
    body = {**REQUEST, "federation_session_id": "cancel-1", "request_id": "c-1"}
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(client.post, route, json=body, headers={"traceparent": header})
        gate.wait_reached()  # held right after the first step's checkpoint
        assert gate.boundaries[-1].name == first
        canceled = client.post("/v1/sessions/cancel-1/runs/c-1/cancel")
        assert canceled.status_code == 202, canceled.text
        assert canceled.json()["status"] == "working"
        assert canceled.json()["cancel_requested"] is True
        canceled_at = time.time_ns()
        gate.release()
        reply = running.result(timeout=120)

    assert reply.status_code == 499, reply.text
    assert reply.json()["error"]["code"] == "canceled"
    assert reply.headers["x-agent-wrapper-llm-calls"] == "1"
    # No LLM call (span) started after the cancel: only the first step's.
    llm = llm_spans(spans, trace_id)
    assert len(llm) == 1
    assert all(s.start_time < canceled_at for s in llm)

    status = client.get("/v1/sessions/cancel-1/runs/c-1").json()
    assert status["status"] == "canceled"
    assert status["error"] == {**status["error"], "status": 499, "code": "canceled"}
    assert status["progress"]["steps"] == [first]
    assert status["progress"]["llm_calls"] == 1
    # Canceling a finished run changes nothing: 200 with its final status.
    again = client.post("/v1/sessions/cancel-1/runs/c-1/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "canceled"

    # The first step's checkpoint was kept: the same request under a new id resumes.
    resumed = client.post(route, json={**body, "request_id": "c-2"})
    assert resumed.status_code == 200, resumed.text
    assert resumed.headers["x-agent-wrapper-llm-calls"] == "1"
    steps = resumed.json()["steps"]
    assert [s["name"] for s in steps] == [first, second]
    assert [s["resumed_from_checkpoint"] for s in steps] == [True, False]


def test_cancel_before_an_llm_call_stops_the_crew_there(make_client) -> None:
    """The crew's PRE_MODEL_CALL boundary: canceled right before the Writer's LLM call."""
    gate = StepGate(kind="llm_call", name="Writer")
    client = make_client(step_hook=gate)
    body = {**REQUEST, "federation_session_id": "cancel-3", "request_id": "w-1"}
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(client.post, "/v1/run_crew", json=body)
            gate.wait_reached()
            assert client.post("/v1/sessions/cancel-3/runs/w-1/cancel").status_code == 202
            gate.release()
            reply = running.result(timeout=120)
    finally:
        gate.release()
    assert reply.status_code == 499, reply.text
    assert reply.headers["x-agent-wrapper-llm-calls"] == "1"
    assert "'Writer'" in reply.json()["error"]["message"]
    status = client.get("/v1/sessions/cancel-3/runs/w-1").json()
    assert status["progress"]["steps"] == ["research"]


def test_cancel_reaches_a_run_on_another_replica_through_redis(
        make_client, gate: StepGate, redis_url: str) -> None:
    shared = {"store": "redis", "redis_url": redis_url,
              "redis_key_prefix": f"cancel-{uuid.uuid4().hex[:8]}"}
    replica_a = make_client(step_hook=gate, state_dir="a", **shared)
    replica_b = make_client(state_dir="b", **shared)
    body = {**REQUEST, "federation_session_id": "cancel-2", "request_id": "x-1"}
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(replica_a.post, "/v1/run_crew", json=body)
        gate.wait_reached()
        assert replica_b.get("/v1/sessions/cancel-2/runs/x-1").json()["status"] == "working"
        # B has no local run: only the flag in Redis can stop A's run.
        assert replica_b.app.state.wrapper.runs.local("cancel-2", "x-1") is None
        assert replica_b.post("/v1/sessions/cancel-2/runs/x-1/cancel").status_code == 202
        gate.release()
        reply = running.result(timeout=120)
    assert reply.status_code == 499, reply.text
    assert reply.headers["x-agent-wrapper-llm-calls"] == "1"
    status = replica_b.get("/v1/sessions/cancel-2/runs/x-1").json()
    assert status["status"] == "canceled"
    assert status["progress"]["steps"] == ["research"]


def test_status_and_cancel_of_runs(client: TestClient) -> None:
    assert client.get("/v1/sessions/s-1/runs/nope").status_code == 404
    missing = client.post("/v1/sessions/s-1/runs/nope/cancel")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "run_not_found"

    reply = client.post("/v1/run_graph", json={"goal": "status", "federation_session_id": "s-1",
                                               "request_id": "done"})
    status = client.get("/v1/sessions/s-1/runs/done")
    assert status.status_code == 200
    record = status.json()
    assert record["status"] == "completed"
    assert record["route"] == "/v1/run_graph" and record["framework"] == "langgraph"
    assert record["result"] == reply.json()
    assert record["trace_id"] == reply.json()["trace_id"]
    assert len(record["body_sha256"]) == 64
    assert record["created_at"] <= record["updated_at"]
    assert record["progress"] == {"current_step": None, "steps": ["plan", "respond"],
                                  "llm_calls": 2}
    assert "owner" not in record
    finished = client.post("/v1/sessions/s-1/runs/done/cancel")
    assert finished.status_code == 200
    assert finished.json()["status"] == "completed"


@pytest.mark.parametrize("path", [
    "/v1/sessions/.hidden/runs/r", "/v1/sessions/a..b/runs/r", "/v1/sessions/s/runs/.r",
    "/v1/sessions/s/runs/a%20b", f"/v1/sessions/{'s' * 129}/runs/r",
])
def test_bad_ids_are_400(client: TestClient, path: str) -> None:
    for response in (client.get(path), client.post(f"{path}/cancel")):
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("store", ["sqlite", "file", "redis"])
def test_run_records_expire_after_the_ttl(make_client, request, store: str) -> None:
    settings: dict = {"run_record_ttl_s": 0.4, "store": store}
    if store == "redis":
        settings.update(store="redis", redis_url=request.getfixturevalue("redis_url"),
                        redis_key_prefix=f"ttl-{uuid.uuid4().hex[:8]}")
    client = make_client(**settings)
    body = {"goal": "short-lived", "federation_session_id": "ttl-1", "request_id": "t-1"}
    assert client.post("/v1/run_graph", json=body).status_code == 200
    assert client.get("/v1/sessions/ttl-1/runs/t-1").status_code == 200
    time.sleep(0.6)
    assert client.get("/v1/sessions/ttl-1/runs/t-1").status_code == 404
    assert client.post("/v1/sessions/ttl-1/runs/t-1/cancel").status_code == 404
    # The id is free again: the request runs anew instead of replaying.
    again = client.post("/v1/run_graph", json=body)
    assert again.status_code == 200
    assert "x-agent-wrapper-replayed" not in again.headers
    assert again.headers["x-agent-wrapper-llm-calls"] == "2"


def test_a_retry_takes_over_a_run_whose_replica_died(make_client) -> None:
    """A record left "working" by a dead replica (nobody holds the session lock) is
    taken over by the retry, which runs it from the saved state."""
    client = make_client(run_poll_ms=20)
    records = client.app.state.wrapper.records
    body = {"goal": "orphan", "federation_session_id": "dead-1", "request_id": "o-1"}
    claim = records.begin(session_id="dead-1", request_id="o-1", route="/v1/run_graph",
                          framework="langgraph", agent="graph", trace_id="0" * 32,
                          body_hash=body_sha256("/v1/run_graph", "orphan", "", {}, {}))
    records.mark_working("dead-1", "o-1", claim.owner)  # ... and then the replica died

    reply = client.post("/v1/run_graph", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-agent-wrapper-llm-calls"] == "2"
    record = client.get("/v1/sessions/dead-1/runs/o-1").json()
    assert (record["status"], record["attempt"]) == ("completed", 2)
