"""Resume through the Redis store, and a failed LLM call never loses stored state."""

import uuid

import pytest

from agent_wrapper.core.config import Settings
from agent_wrapper.store import build_store

from ..conftest import free_port

ROUTES = ["/v1/run_crew", "/v1/run_graph"]


@pytest.mark.parametrize("route", ROUTES)
def test_same_session_resumes_through_redis(make_client, redis_url: str, route: str) -> None:
    client = make_client(store="redis", redis_url=redis_url,
                         redis_key_prefix=f"t-{uuid.uuid4().hex[:8]}")
    body = {"goal": "first", "federation_session_id": "r-1", "request_id": "a"}
    first = client.post(route, json=body).json()
    second = client.post(route, json={**body, "goal": "second", "request_id": "b"})
    assert second.status_code == 200, second.text
    data = second.json()
    assert first["resumed"] is False and data["resumed"] is True
    assert data["state"] == {**data["state"], "store": "redis", "run_count": 2}
    assert [h["request_id"] for h in data["history"]] == ["a", "b"]
    assert data["history"][0]["output"] == first["output"]


@pytest.mark.parametrize("route", ROUTES)
def test_llm_failure_keeps_stored_state(make_client, tmp_path, route: str) -> None:
    good = make_client(state_dir="shared")
    first = good.post(route, json={"goal": "keep me", "federation_session_id": "keep"}).json()
    store = build_store(Settings(state_dir=tmp_path / "shared"))
    before = store.load("keep")

    failing = make_client(state_dir="shared", llm_provider="openai", llm_model="m",
                          llm_base_url=f"http://127.0.0.1:{free_port()}/v1",
                          llm_max_retries=0)
    reply = failing.post(route, json={"goal": "boom", "federation_session_id": "keep"})
    assert reply.status_code == 502, reply.text
    assert reply.json()["error"]["code"] == "llm_failure"
    after = store.load("keep")
    assert after["history"] == before["history"]
    assert after["run_count"] == before["run_count"] == 1

    again = good.post(route, json={"goal": "after", "federation_session_id": "keep"}).json()
    assert again["history"][0]["output"] == first["output"]
    assert again["state"]["run_count"] == 2
