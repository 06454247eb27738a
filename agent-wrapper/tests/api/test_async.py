"""Prefer: respond-async: 202 with the record at once, the run goes on in the
background, the status route shows working -> completed with the result."""

import time

from fastapi.testclient import TestClient

from agent_wrapper.core.config import Settings
from agent_wrapper.store import build_store
from tests.conftest import StepGate


def wait_for_status(client: TestClient, path: str, wanted: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = client.get(path).json()
        if record["status"] == wanted or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def test_respond_async_answers_202_and_the_status_route_follows_the_run(
        make_client, gate: StepGate) -> None:
    client = make_client(step_hook=gate)
    body = {"goal": "Background job", "federation_session_id": "as-1", "request_id": "a-1"}
    accepted = client.post("/v1/run_crew", json=body, headers={"prefer": "respond-async"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["location"] == "/v1/sessions/as-1/runs/a-1"
    assert accepted.headers["preference-applied"] == "respond-async"
    record = accepted.json()
    assert record["status"] in ("submitted", "working")
    assert (record["federation_session_id"], record["request_id"]) == ("as-1", "a-1")
    assert "result" not in record

    gate.wait_reached()  # the run is held after its first step
    working = client.get(accepted.headers["location"]).json()
    assert working["status"] == "working"
    assert working["progress"]["steps"] == ["research"]
    gate.release()

    done = wait_for_status(client, accepted.headers["location"], "completed")
    assert done["status"] == "completed", done
    result = done["result"]
    assert [s["name"] for s in result["steps"]] == ["research", "write"]
    assert result["request_id"] == "a-1"
    assert done["progress"]["llm_calls"] == 2
    assert result["trace_id"] == record["trace_id"]

    # A later blocking call with the same id gets the stored result.
    again = client.post("/v1/run_crew", json=body)
    assert again.headers["x-agent-wrapper-replayed"] == "true"
    assert again.json() == result
    # ... and an async one the completed record.
    record_again = client.post("/v1/run_crew", json=body, headers={"prefer": "respond-async"})
    assert record_again.status_code == 202
    assert record_again.json()["status"] == "completed"


def test_respond_async_without_request_id_gets_one(client: TestClient) -> None:
    accepted = client.post("/v1/run_graph", json={"goal": "no id", "federation_session_id": "as-2"},
                           headers={"prefer": "wait=5, respond-async"})
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]
    assert len(request_id) == 36
    assert accepted.headers["x-agent-wrapper-request-id"] == request_id
    done = wait_for_status(client, f"/v1/sessions/as-2/runs/{request_id}", "completed")
    assert done["result"]["output"]


def test_shutdown_stops_background_runs_at_a_step_boundary(make_app, tmp_path) -> None:
    """Without a run queue (file store) the stopped run fails 503 shutting_down; a
    retry of the same request resumes it."""
    app = make_app(test_step_delay_ms=100, store="file")
    body = {"goal": "Interrupted", "federation_session_id": "as-3", "request_id": "a-3"}
    with TestClient(app) as client:
        accepted = client.post("/v1/run_crew", json=body, headers={"prefer": "respond-async"})
        assert accepted.status_code == 202
    # The app shut down while the run was going: it stopped, the record says why.
    store = build_store(Settings(state_dir=tmp_path / "state", store="file"))
    record = store.load_run("as-3", "a-3")
    assert record["status"] == "failed"
    assert record["error"]["status"] == 503
    assert record["error"]["code"] == "shutting_down"


def test_a_worker_shutting_down_hands_its_runs_to_the_next_worker(make_app, tmp_path) -> None:
    """With the durable queue (SQLite here) a stopped run goes back to the queue, and
    the next worker on the same database finishes it with no request at all, redoing
    no finished step."""
    app = make_app(test_step_delay_ms=100)
    body = {"goal": "Handed over", "federation_session_id": "as-4", "request_id": "a-4"}
    with TestClient(app) as client:
        accepted = client.post("/v1/run_crew", json=body, headers={"prefer": "respond-async"})
        assert accepted.status_code == 202
    record = build_store(Settings(state_dir=tmp_path / "state")).load_run("as-4", "a-4")
    assert record["status"] == "submitted", record
    with TestClient(make_app()) as next_worker:
        done = wait_for_status(next_worker, "/v1/sessions/as-4/runs/a-4", "completed")
    assert done["result"]["output"]
    assert done["progress"]["steps"] == ["research", "write"]
