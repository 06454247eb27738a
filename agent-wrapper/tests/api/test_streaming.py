"""Accept: application/x-ndjson: typed progress events, streamed while the run goes
on (against a real uvicorn server), ending in exactly one completed/failed/canceled."""

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import StepGate, free_port

NDJSON = {"accept": "application/x-ndjson"}
TERMINAL = {"completed", "failed", "canceled"}
CASES = [("/v1/run_crew", "research", "write"), ("/v1/run_graph", "plan", "respond")]


def events(response: httpx.Response) -> Iterator[dict]:
    for line in response.iter_lines():
        if line.strip():
            yield json.loads(line)


def check_envelope(received: list[dict]) -> None:
    assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
    assert received[0]["type"] == "started"
    assert [e["type"] in TERMINAL for e in received] == [False] * (len(received) - 1) + [True]
    trace_ids = {e["trace_id"] for e in received}
    assert len(trace_ids) == 1 and len(trace_ids.pop()) == 32
    assert all(isinstance(e["ts"], int) and isinstance(e["data"], dict) for e in received)
    assert [e["ts"] for e in received] == sorted(e["ts"] for e in received)


@pytest.mark.parametrize("route, first, second", CASES)
def test_stream_delivers_events_as_the_run_progresses(
        make_app, serve, gate: StepGate, route: str, first: str, second: str) -> None:
    base = serve(make_app(step_hook=gate))
    body = {"goal": "Stream me", "federation_session_id": "st-1", "request_id": "s-1"}
    received: list[dict] = []
    with httpx.stream("POST", base + route, json=body, headers=NDJSON, timeout=120) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/x-ndjson")
        assert reply.headers["x-agent-wrapper-request-id"] == "s-1"
        for event in events(reply):
            received.append(event)
            if event["type"] == "checkpoint_saved" and not gate.released.is_set():
                # These events reached us while the run is (about to be) held at
                # its first checkpoint: before it could finish.
                gate.wait_reached()
                status = httpx.get(f"{base}/v1/sessions/st-1/runs/s-1").json()
                assert status["status"] == "working"
                gate.release()
    assert not gate.timed_out, "events were not delivered while the run was held"

    check_envelope(received)
    kinds = [e["type"] for e in received]
    assert kinds[-1] == "completed"
    steps = [(e["data"]["name"], e["data"]["phase"]) for e in received if e["type"] == "step"]
    assert steps == [(first, "started"), (first, "finished"), (second, "started"),
                     (second, "finished")]
    assert [e["data"]["step"] for e in received if e["type"] == "checkpoint_saved"] == [
        first, second]
    llm = [e["data"] for e in received if e["type"] == "llm_call"]
    assert len(llm) == 2
    assert all(c["model"] == "offline-deterministic" and c["completion_chars"] > 0 for c in llm)
    # Each LLM call is reported inside its step, before the step's checkpoint.
    assert kinds.index("llm_call") < kinds.index("checkpoint_saved")
    assert received[0]["data"] == {**received[0]["data"], "request_id": "s-1", "attempt": 1}

    final = received[-1]["data"]
    assert final["llm_calls"] == 2 and final["replayed"] is False
    reply_body = final["reply"]
    assert reply_body["trace_id"] == received[0]["trace_id"]
    assert [s["name"] for s in reply_body["steps"]] == [first, second]
    status = httpx.get(f"{base}/v1/sessions/st-1/runs/s-1").json()
    assert status["status"] == "completed"
    assert status["result"] == reply_body

    # Streamed retry of the same id: the stored reply, nothing run again.
    with httpx.stream("POST", base + route, json=body, headers=NDJSON, timeout=60) as again:
        replayed = list(events(again))
    check_envelope(replayed)
    assert [e["type"] for e in replayed] == ["started", "completed"]
    assert replayed[0]["data"]["replayed"] is True
    assert replayed[-1]["data"]["reply"] == reply_body
    assert replayed[-1]["data"]["llm_calls"] == 0


def test_failing_stream_ends_with_failed(make_app, serve) -> None:
    base = serve(make_app(llm_provider="openai", llm_model="m", llm_max_retries=0,
                          llm_base_url=f"http://127.0.0.1:{free_port()}/v1"))
    with httpx.stream("POST", base + "/v1/run_graph", headers=NDJSON, timeout=120,
                      json={"goal": "boom", "federation_session_id": "st-2"}) as reply:
        assert reply.status_code == 200
        received = list(events(reply))
    check_envelope(received)
    assert received[-1]["type"] == "failed"
    assert received[-1]["data"]["status"] == 502
    assert received[-1]["data"]["code"] == "llm_failure"
    assert "llm_call" not in [e["type"] for e in received]


def test_cancel_during_a_stream_ends_with_canceled(make_app, serve, gate: StepGate) -> None:
    base = serve(make_app(step_hook=gate))
    received: list[dict] = []
    with httpx.stream("POST", base + "/v1/run_crew", headers=NDJSON, timeout=120,
                      json={"goal": "Cancel me", "federation_session_id": "st-3"}) as reply:
        request_id = reply.headers["x-agent-wrapper-request-id"]  # generated for streams
        for event in events(reply):
            received.append(event)
            if event["type"] == "checkpoint_saved":
                cancel = httpx.post(f"{base}/v1/sessions/st-3/runs/{request_id}/cancel")
                assert cancel.status_code == 202
                gate.release()
    check_envelope(received)
    assert received[-1]["type"] == "canceled"
    assert received[-1]["data"]["status"] == 499
    assert received[-1]["data"]["code"] == "canceled"
    assert [e["type"] for e in received].count("llm_call") == 1, "no LLM call after cancel"
    status = httpx.get(f"{base}/v1/sessions/st-3/runs/{request_id}").json()
    assert status["status"] == "canceled"


def test_stream_errors_before_the_start_are_plain_json(make_app, serve) -> None:
    base = serve(make_app())
    body = {"goal": "one", "federation_session_id": "st-4", "request_id": "same"}
    assert httpx.post(base + "/v1/run_graph", json=body, timeout=60).status_code == 200
    reused = httpx.post(base + "/v1/run_graph", json={**body, "goal": "two"}, headers=NDJSON,
                        timeout=60)
    assert reused.status_code == 412
    assert reused.json()["error"]["code"] == "request_id_reused"
