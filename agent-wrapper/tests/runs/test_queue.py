"""The durable run queue: a worker runs at most AGENT_WRAPPER_MAX_RUNS runs, the rest
wait in the database for any worker, a full queue answers 503 with Retry-After, and a
worker that dies mid-run has its run finished by another worker with no request."""

import threading
import time

import httpx
import pytest

from tests.api.test_async import wait_for_status
from tests.conftest import StepGate, fresh_database

ASYNC = {"prefer": "respond-async"}


def test_runs_beyond_the_slots_wait_in_the_queue_and_a_full_queue_is_503(
        make_client, gate: StepGate) -> None:
    client = make_client(step_hook=gate, max_runs=1, max_queued=1, run_poll_ms=20)
    first = client.post("/v1/run_graph", headers=ASYNC,
                        json={"goal": "one", "federation_session_id": "q-1", "request_id": "r"})
    assert first.status_code == 202
    gate.wait_reached()  # the only slot is busy
    second = client.post("/v1/run_graph", headers=ASYNC,
                         json={"goal": "two", "federation_session_id": "q-2", "request_id": "r"})
    assert second.status_code == 202 and second.json()["status"] == "submitted"
    third = client.post("/v1/run_graph", headers=ASYNC,
                        json={"goal": "three", "federation_session_id": "q-3", "request_id": "r"})
    assert third.status_code == 503, third.text
    assert third.json()["error"]["code"] == "overloaded"
    assert third.headers["retry-after"] == "2"
    assert client.get("/v1/sessions/q-3/runs/r").json()["status"] == "failed"
    gate.release()
    for session in ("q-1", "q-2"):
        done = wait_for_status(client, f"/v1/sessions/{session}/runs/r", "completed")
        assert done["status"] == "completed", done
    # The refused run may be retried once there is room.
    again = client.post("/v1/run_graph",
                        json={"goal": "three", "federation_session_id": "q-3", "request_id": "r"})
    assert again.status_code == 200, again.text


def test_a_blocking_request_waits_in_the_queue_for_a_slot(make_client, gate: StepGate) -> None:
    client = make_client(step_hook=gate, max_runs=1, run_poll_ms=20)
    holder = client.post("/v1/run_crew", headers=ASYNC,
                         json={"goal": "hold", "federation_session_id": "w-1", "request_id": "r"})
    assert holder.status_code == 202
    gate.wait_reached()
    replies: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: replies.append(client.post(
        "/v1/run_graph", json={"goal": "wait", "federation_session_id": "w-2",
                               "request_id": "r"})))
    waiting.start()
    time.sleep(0.5)
    assert not replies, "it waits while the only slot is busy"
    gate.release()
    waiting.join(60)
    assert replies[0].status_code == 200, replies[0].text
    assert replies[0].json()["output"]


def test_without_a_queue_a_full_worker_answers_503_at_once(make_client, gate: StepGate) -> None:
    client = make_client(step_hook=gate, max_runs=1, store="file")
    assert client.post("/v1/run_crew", headers=ASYNC, json={
        "goal": "hold", "federation_session_id": "n-1", "request_id": "r"}).status_code == 202
    gate.wait_reached()
    refused = client.post("/v1/run_crew", json={"goal": "more", "federation_session_id": "n-2"})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
    assert "no run queue" in refused.json()["error"]["message"]
    gate.release()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_another_worker_finishes_the_run_of_a_worker_killed_mid_run(
        wrapper_process, tmp_path, request, store: str) -> None:
    """Two worker processes on one database; the one running the crew dies after its
    first task's checkpoint. The other takes the run from the queue by itself and runs
    only the second task: one LLM call for it, none redone."""
    env = {"AGENT_WRAPPER_STORE": store, "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "s"),
           "AGENT_WRAPPER_RUN_POLL_MS": "50"}
    if store == "postgres":
        env["AGENT_WRAPPER_DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres_url"))
    survivor = wrapper_process(**env)
    doomed = wrapper_process(**env, AGENT_WRAPPER_TEST_CRASH_AFTER_STEP="1",
                             AGENT_WRAPPER_MAX_RUNS="4")
    # The survivor must not take the new run before the doomed worker does: it is busy
    # with nothing, but the doomed worker claims its own run when it accepts it.
    accepted = httpx.post(doomed.url("/v1/run_crew"), headers=ASYNC, timeout=30, json={
        "goal": "Outlive a worker", "federation_session_id": "kill-1", "request_id": "k-1"})
    assert accepted.status_code == 202, accepted.text
    assert doomed.proc.wait(timeout=60) == 17, "died at the fault-injection point"

    deadline = time.monotonic() + 60
    record: dict = {}
    while time.monotonic() < deadline:
        record = httpx.get(survivor.url("/v1/sessions/kill-1/runs/k-1"), timeout=10).json()
        if record.get("status") == "completed":
            break
        time.sleep(0.2)
    assert record.get("status") == "completed", record
    assert record["attempt"] == 2
    assert record["progress"]["llm_calls"] == 1, "only the unfinished task called the model"
    steps = record["result"]["steps"]
    assert [(s["name"], s["resumed_from_checkpoint"]) for s in steps] == [
        ("research", True), ("write", False)]
