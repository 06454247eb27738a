"""GET /v1/sessions/{sid}/runs/{rid}/events?after=N: a watcher that lost a run's stream
rejoins it after the last seq it saw, on this or another replica sharing the store, and
gets every later event once (replayed from the run record, then live) up to the
terminal one."""

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from agent_wrapper.core.errors import RunCanceled, error_info
from agent_wrapper.runs import events as run_events
from agent_wrapper.runs import records as run_records
from agent_wrapper.runs.records import RunRecords
from agent_wrapper.store.file_store import FileStateStore
from tests.conftest import StepGate, free_port

NDJSON = {"accept": "application/x-ndjson"}


def lines(response: httpx.Response) -> Iterator[dict]:
    for line in response.iter_lines():
        if line.strip():
            yield json.loads(line)


@pytest.mark.parametrize("same_replica", [False, True])
def test_a_cut_stream_is_rejoined_without_gap_or_duplicate(
        make_app, serve, gate: StepGate, same_replica: bool) -> None:
    runner = serve(make_app(step_hook=gate))
    # A second app instance on the same store: another replica.
    watcher = runner if same_replica else serve(make_app())
    body = {"goal": "Rejoin me", "federation_session_id": "rj-1", "request_id": "r-1"}
    first: list[dict] = []
    with httpx.stream("POST", runner + "/v1/run_graph", json=body, headers=NDJSON,
                      timeout=120) as original:
        stream = lines(original)
        for event in stream:
            first.append(event)
            if event["type"] == "checkpoint_saved":
                break
        gate.wait_reached()  # the run is held mid-way: what follows is live
        cut = 2
        url = f"{watcher}/v1/sessions/rj-1/runs/r-1/events"
        rejoined: list[dict] = []
        with httpx.stream("GET", url, params={"after": cut}, timeout=120) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("application/x-ndjson")
            watched = lines(reply)
            # The replay: what the cut stream had seen after seq `cut`, while held.
            while not rejoined or rejoined[-1]["seq"] < first[-1]["seq"]:
                rejoined.append(next(watched))
            gate.release()
            rejoined.extend(watched)  # live, to the end
        rest = list(stream)
    assert not gate.timed_out
    everything = first + rest
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert everything[-1]["type"] == "completed"
    # Exactly the events after the cut, the same ones, the terminal one last.
    assert rejoined == everything[cut:]

    # Rejoining a finished run replays its tail and ends; after its last seq: nothing.
    n = len(everything)
    tail = list(lines(httpx.get(url, params={"after": n - 2}, timeout=60)))
    assert tail == everything[n - 2:]
    assert list(lines(httpx.get(url, params={"after": n}, timeout=60))) == []


def test_unknown_runs_and_bad_ids_are_refused(client) -> None:
    reply = client.get("/v1/sessions/nope/runs/r-0/events")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "run_not_found"
    assert client.get("/v1/sessions/.bad/runs/r-0/events").status_code == 400
    assert client.get("/v1/sessions/s/runs/r-0/events", params={"after": -1}).status_code in (
        400, 422)


def test_a_failed_run_replays_its_failed_event(make_app, serve) -> None:
    base = serve(make_app(llm_provider="openai", llm_model="m", llm_max_retries=0,
                          llm_base_url=f"http://127.0.0.1:{free_port()}/v1"))
    body = {"goal": "Fail me", "federation_session_id": "rj-2", "request_id": "r-2"}
    with httpx.stream("POST", base + "/v1/run_graph", json=body, headers=NDJSON,
                      timeout=60) as reply:
        original = list(lines(reply))
    assert original[-1]["type"] == "failed"
    assert original[-1]["data"]["code"] == "llm_failure"
    url = f"{base}/v1/sessions/rj-2/runs/r-2/events"
    assert list(lines(httpx.get(url, timeout=60))) == original


def test_the_log_is_bounded_and_keeps_the_terminal_event(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(run_records, "MAX_LOGGED_EVENTS", 3)
    records = RunRecords(FileStateStore(tmp_path), ttl_s=60)
    claim = records.begin(session_id="s", request_id="r", route="/v1/run_crew",
                          framework="crewai", agent="a", body_hash="h", trace_id="t")
    log = run_events.EventLog(
        "t", lambda batch: records.append_events("s", "r", claim.owner, batch))
    for _ in range(5):
        log.emit("step", {"name": "x", "phase": "started"})
    log.emit("canceled", error_info(RunCanceled("stop")))
    logged = records.get("s", "r")["events"]
    assert [e["seq"] for e in logged] == [1, 2, 3, 6]
    assert logged[-1]["type"] == "canceled"
    # The public record does not carry the log.
    assert "events" not in run_records.public_view(records.get("s", "r"))


def test_a_finished_record_without_its_terminal_event_gets_one(monkeypatch) -> None:
    """Its worker died between recording the outcome and logging the event."""
    monkeypatch.setattr(run_events, "TERMINAL_GRACE_S", 0.0)
    step = run_events.make_event(1, "started", "t", {})
    record = {"status": "failed", "trace_id": "t", "events": [step],
              "error": {"status": 500, "code": "llm_failure", "message": "boom"}}

    async def load() -> dict:
        return record

    async def collect() -> list[dict]:
        return [e async for e in run_events.follow_record(load, lambda: None, 0, 0.01)]

    got = asyncio.run(collect())
    assert [(e["seq"], e["type"]) for e in got] == [(1, "started"), (2, "failed")]
    assert got[-1]["data"]["code"] == "llm_failure"
