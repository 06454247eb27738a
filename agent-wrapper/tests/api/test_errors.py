"""Bad input and faults: a typed JSON error with the right status, nothing stored lost."""

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_wrapper.core.config import Settings
from agent_wrapper.core.errors import SessionBusy, StoreUnavailable
from agent_wrapper.main import create_app
from agent_wrapper.store import FileStateStore
from tests.conftest import SPANS


def error(response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


@pytest.mark.parametrize("payload, needle", [
    ({"context": "no goal"}, "goal"),
    ({"goal": "   "}, "goal"),
    ({"goal": "x", "input_data": [1, 2]}, "input_data"),
    ({"goal": "x", "input_data": "text"}, "input_data"),
    ({"goal": "x", "federation_session_id": ""}, "federation_session_id"),
    ({"goal": "x", "federation_session_id": "s" * 129}, "federation_session_id"),
    ({"goal": "x", "federation_session_id": "../escape"}, "federation_session_id"),
    ({"goal": "x", "federation_session_id": "a/b"}, "federation_session_id"),
    ({"goal": "x", "federation_session_id": ".hidden"}, "federation_session_id"),
])
@pytest.mark.parametrize("route", ["/v1/run_crew", "/v1/run_graph"])
def test_bad_input_is_422(client: TestClient, route: str, payload: dict, needle: str) -> None:
    status, code, message = error(client.post(route, json=payload))
    assert (status, code) == (422, "invalid_input")
    assert needle in message


def test_non_json_body_is_422(client: TestClient) -> None:
    response = client.post("/v1/run_crew", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert error(response)[:2] == (422, "invalid_input")


def test_oversized_body_is_413(make_client) -> None:
    client = make_client(max_body_bytes=1024)
    status, code, _ = error(client.post("/v1/run_crew", json={"goal": "x" * 2048}))
    assert (status, code) == (413, "payload_too_large")

    def chunks():
        for _ in range(4):
            yield b'{"goal": "' + b"y" * 400
        yield b'"}'

    status, code, _ = error(client.post("/v1/run_crew", content=chunks(),
                                        headers={"content-type": "application/json"}))
    assert (status, code) == (413, "payload_too_large")


def test_concurrent_request_on_a_running_session_is_409(client: TestClient) -> None:
    store = client.app.state.wrapper.store
    with store.lock("busy-1"):
        status, code, message = error(
            client.post("/v1/run_crew", json={"goal": "x", "federation_session_id": "busy-1"}))
    assert (status, code) == (409, "session_busy")
    assert "busy-1" in message
    # Once the run is over, the session serves again.
    assert client.post("/v1/run_crew", json={"goal": "x", "federation_session_id": "busy-1"}
                       ).status_code == 200


def test_only_one_of_two_racing_requests_gets_the_lock(client: TestClient) -> None:
    store = client.app.state.wrapper.store
    results: list[object] = []
    barrier = threading.Barrier(2)

    def take() -> None:
        barrier.wait()
        try:
            with store.lock("race"):
                results.append("locked")
                threading.Event().wait(0.2)
        except SessionBusy:
            results.append("busy")

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["busy", "locked"]


def test_store_down_is_503_and_readyz_says_why(make_client, redis_url: str) -> None:
    client = make_client(store="redis", redis_url="redis://127.0.0.1:1/0")
    status, code, _ = error(client.post("/v1/run_graph", json={"goal": "x"}))
    assert (status, code) == (503, "store_unavailable")
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"


class FailingSaves(FileStateStore):
    """The real file store whose writes start failing on demand (a full or
    read-only disk), for checking that a failed request loses nothing."""

    broken = False

    def save(self, session_id: str, document: dict, lock: object = None, *,
             durable: bool = True) -> None:
        if self.broken:
            raise StoreUnavailable("disk full (injected)")
        super().save(session_id, document, lock, durable=durable)


@pytest.mark.parametrize("route", ["/v1/run_crew", "/v1/run_graph"])
def test_store_write_failure_is_503_and_keeps_state(tmp_path: Path, route: str) -> None:
    store = FailingSaves(tmp_path / "faulty")
    app = create_app(Settings(state_dir=tmp_path / "faulty"), span_exporter=SPANS, store=store)
    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.post(route, json={"goal": "first", "federation_session_id": "keep"})
        assert ok.status_code == 200
        before = store.load("keep")
        store.broken = True
        failed = client.post(route, json={"goal": "second", "federation_session_id": "keep"})
        assert error(failed)[:2] == (503, "store_unavailable")
        assert "disk full" in error(failed)[2]
        store.broken = False
        assert store.load("keep") == before
        again = client.post(route, json={"goal": "third", "federation_session_id": "keep"})
        assert [h["goal"] for h in again.json()["history"]] == ["first", "third"]


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["llm"]["provider"] == "offline"
    assert client.get("/openapi.json").status_code == 404, "docs are off by default"
    assert client.get("/docs").status_code == 404


def test_openapi_when_enabled(make_client) -> None:
    paths = make_client(api_docs=True).get("/openapi.json").json()["paths"]
    assert {"/v1/run_crew", "/v1/run_graph", "/healthz", "/readyz"} <= set(paths)
