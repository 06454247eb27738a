"""A cancel answered 202 always ends the run ``canceled``, however late it lands: in the
run's last step (after its last LLM call: no boundary is left to stop it), or between
the run's last check and its outcome write. Each interleaving is forced with a hook."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import StepGate

CASES = [("/v1/run_crew", ["research", "write"]), ("/v1/run_graph", ["plan", "respond"])]
BODY = {"goal": "Cancel me late", "context": "race"}


@pytest.mark.parametrize("route, steps", CASES)
def test_a_cancel_landing_just_before_the_outcome_write_is_not_overwritten(
        make_client, monkeypatch, route: str, steps: list[str]) -> None:
    """Every check passed, the outcome is about to be written: the cancel comes now. The
    write finds it and records ``canceled``; the caller gets 499 too."""
    client = make_client()
    records = client.app.state.wrapper.records
    about_to_write, proceed = threading.Event(), threading.Event()
    complete = records.complete

    def held_complete(*args, **kwargs):
        about_to_write.set()
        assert proceed.wait(60), "the test never let the outcome write go on"
        return complete(*args, **kwargs)

    monkeypatch.setattr(records, "complete", held_complete)
    body = {**BODY, "federation_session_id": "late-1", "request_id": "r-1"}
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(client.post, route, json=body)
        try:
            assert about_to_write.wait(120), "the run never reached its outcome write"
            canceled = client.post("/v1/sessions/late-1/runs/r-1/cancel")
            assert canceled.status_code == 202, canceled.text
            assert canceled.json()["cancel_requested"] is True
        finally:
            proceed.set()
        reply = running.result(timeout=120)
    assert reply.status_code == 499, reply.text
    assert reply.json()["error"]["code"] == "canceled"
    record = client.get("/v1/sessions/late-1/runs/r-1").json()
    assert record["status"] == "canceled" and record["error"]["code"] == "canceled"
    assert record["progress"]["steps"] == steps


@pytest.mark.parametrize("route, steps", CASES)
def test_a_cancel_during_the_last_step_stops_the_run_before_its_outcome(
        make_client, route: str, steps: list[str]) -> None:
    """The last step ran (no step boundary is left after it); the cancel comes before
    the run's outcome is saved: the run ends canceled, its history does not record it,
    and the checkpoints it saved are kept."""
    gate = StepGate(kind="finish")
    client = make_client(step_hook=gate)
    body = {**BODY, "federation_session_id": "late-2", "request_id": "r-1"}
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(client.post, route, json=body)
            gate.wait_reached()
            canceled = client.post("/v1/sessions/late-2/runs/r-1/cancel")
            assert canceled.status_code == 202, canceled.text
            gate.release()
            reply = running.result(timeout=120)
    finally:
        gate.release()
    assert reply.status_code == 499, reply.text
    assert reply.headers["x-agent-wrapper-llm-calls"] == "2"
    record = client.get("/v1/sessions/late-2/runs/r-1").json()
    assert record["status"] == "canceled"
    assert record["progress"]["steps"] == steps
    again = client.post(route, json={**body, "request_id": "r-2"})
    assert again.status_code == 200, again.text
    assert [h["request_id"] for h in again.json()["history"]] == ["r-2"]
    if route == "/v1/run_crew":  # both tasks' checkpoints were kept: nothing runs again
        assert again.headers["x-agent-wrapper-llm-calls"] == "0"
        assert all(s["resumed_from_checkpoint"] for s in again.json()["steps"])
