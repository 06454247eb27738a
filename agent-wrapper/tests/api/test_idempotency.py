"""Idempotent retries keyed by (federation_session_id, request_id): replay, attach to a
run in progress, 412 for a reused id, and nothing run twice."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from agent_wrapper.store import FileStateStore

ROUTES = ["/v1/run_crew", "/v1/run_graph"]


def body(session: str, request_id: str, **extra: object) -> dict:
    return {"goal": "Compare two queues", "context": "for ops", "input_data": {"n": 2},
            "metadata": {"caller": "test"}, "federation_session_id": session,
            "request_id": request_id, **extra}


@pytest.mark.parametrize("route", ROUTES)
def test_retry_replays_the_stored_reply_without_running_again(client: TestClient,
                                                              route: str) -> None:
    first = client.post(route, json=body("idem-1", "r-1"))
    assert first.status_code == 200, first.text
    assert first.headers["x-agent-wrapper-llm-calls"] == "2"
    assert "x-agent-wrapper-replayed" not in first.headers

    # Same id, same body (key order does not matter): the stored reply, no LLM call.
    again = client.post(route, json=dict(reversed(list(body("idem-1", "r-1").items()))))
    assert again.status_code == 200, again.text
    assert again.headers["x-agent-wrapper-replayed"] == "true"
    assert again.headers["x-agent-wrapper-llm-calls"] == "0"
    assert again.json() == first.json()

    document = client.app.state.wrapper.store.load("idem-1")
    assert document["run_count"] == 1, "the crew/graph ran once"
    status = client.get("/v1/sessions/idem-1/runs/r-1").json()
    assert status["status"] == "completed"
    assert status["result"] == first.json()
    assert status["attempt"] == 1


@pytest.mark.parametrize("route", ROUTES)
def test_same_request_id_with_another_body_is_412(client: TestClient, route: str) -> None:
    assert client.post(route, json=body("idem-2", "r-1")).status_code == 200
    for changed in ({"goal": "Another goal"}, {"metadata": {"caller": "other"}},
                    {"input_data": {"n": 3}}):
        reply = client.post(route, json=body("idem-2", "r-1", **changed))
        assert reply.status_code == 412, reply.text
        error = reply.json()["error"]
        assert error["code"] == "request_id_reused"
        assert "r-1" in error["message"]
    other_route = ROUTES[1 - ROUTES.index(route)]
    assert client.post(other_route, json=body("idem-2", "r-1")).status_code == 412
    # The same id in another session is another run.
    assert client.post(route, json=body("idem-2b", "r-1")).status_code == 200


def test_concurrent_duplicate_attaches_and_the_crew_runs_once(make_client, gate) -> None:
    client = make_client(step_hook=gate, run_poll_ms=20)
    manager = client.app.state.wrapper.runs
    request = body("idem-3", "dup")

    def held_until_the_duplicate_waits(_boundary) -> None:
        deadline = time.monotonic() + 30
        while manager.waiters("idem-3", "dup") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)

    gate.action = held_until_the_duplicate_waits
    with ThreadPoolExecutor(2) as pool:
        original = pool.submit(client.post, "/v1/run_crew", json=request)
        gate.wait_reached()
        duplicate = pool.submit(client.post, "/v1/run_crew", json=request)
        first, second = original.result(timeout=120), duplicate.result(timeout=120)

    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert second.json() == first.json()
    assert first.headers["x-agent-wrapper-llm-calls"] == "2"
    assert second.headers["x-agent-wrapper-llm-calls"] == "0"
    assert second.headers["x-agent-wrapper-replayed"] == "true"
    assert client.app.state.wrapper.store.load("idem-3")["run_count"] == 1


def test_duplicate_on_another_replica_attaches_through_redis(make_client, gate,
                                                             redis_url: str) -> None:
    shared = {"store": "redis", "redis_url": redis_url, "run_poll_ms": 20,
              "redis_key_prefix": f"idem-{time.monotonic_ns()}"}
    replica_a = make_client(step_hook=gate, state_dir="a", **shared)
    replica_b = make_client(state_dir="b", **shared)
    request = body("idem-4", "dup")
    waiting = threading.Event()

    def held_until_b_waits(_boundary) -> None:
        waiting.wait(30)
        time.sleep(0.1)  # B polls every 20 ms: let it see "working" at least once

    gate.action = held_until_b_waits
    with ThreadPoolExecutor(2) as pool:
        original = pool.submit(replica_a.post, "/v1/run_graph", json=request)
        gate.wait_reached()
        duplicate = pool.submit(replica_b.post, "/v1/run_graph", json=request)
        deadline = time.monotonic() + 30
        while replica_b.app.state.wrapper.runs.waiters("idem-4", "dup") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        waiting.set()
        first, second = original.result(timeout=120), duplicate.result(timeout=120)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert second.json() == first.json()
    assert second.headers["x-agent-wrapper-replayed"] == "true"
    assert second.headers["x-agent-wrapper-llm-calls"] == "0"


def test_request_ids_are_validated(client: TestClient) -> None:
    for bad in ("", "../x", "a/b", ".x", "r" * 129, "a b"):
        reply = client.post("/v1/run_crew", json={"goal": "x", "request_id": bad})
        assert reply.status_code == 422, bad
        assert "request_id" in reply.json()["error"]["message"]


def test_file_records_live_beside_the_session_state(make_client, tmp_path) -> None:
    client = make_client(store="file")
    assert client.post("/v1/run_graph", json=body("idem-5", "r-9")).status_code == 200
    store = client.app.state.wrapper.store
    assert isinstance(store, FileStateStore)
    files = list((tmp_path / "state" / "runs" / "idem-5").glob("*.json"))
    assert [p.name for p in files] == ["r-9.json"]
