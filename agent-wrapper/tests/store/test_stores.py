"""Both Federation Storage backends: round trip, atomic replace, locks, safe keys."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_wrapper.core.errors import InvalidInput, StoreUnavailable
from agent_wrapper.store import FileStateStore, RedisStateStore, StateStore


@pytest.fixture(params=["file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "file":
        backend: StateStore = FileStateStore(tmp_path / "state")
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisStateStore(url, prefix=f"test-{tmp_path.name}", lock_ttl_ms=2000)
    yield backend
    backend.close()


def test_round_trip_and_replace(store: StateStore) -> None:
    assert store.load("s-1") is None
    store.save("s-1", {"run_count": 1, "history": ["a"]})
    store.save("s-1", {"run_count": 2, "history": ["a", "b"]})
    assert store.load("s-1") == {"run_count": 2, "history": ["a", "b"]}
    store.delete("s-1")
    assert store.load("s-1") is None
    store.ping()


def test_lock_is_exclusive_until_released(store: StateStore) -> None:
    first = store.try_lock("s-2")
    assert first is not None
    assert store.try_lock("s-2") is None
    assert store.try_lock("other") is not None
    first.release()
    first.release()  # idempotent
    again = store.try_lock("s-2")
    assert again is not None
    again.release()


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a\\b", ".x", "s" * 129, "a b"])
def test_unsafe_session_ids_never_reach_the_backend(store: StateStore, bad: str) -> None:
    with pytest.raises((InvalidInput, ValueError)):
        store.save(bad, {})
    with pytest.raises((InvalidInput, ValueError)):
        store.load(bad)


def test_file_store_writes_atomically_inside_its_directory(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    store.save("atomic", {"v": 1})
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to((tmp_path / "state").resolve()) for p in files)
    assert not [p for p in files if ".tmp" in p.name], "no temp file left behind"
    assert not (tmp_path / "x").exists()


def test_redis_down_is_store_unavailable() -> None:
    store = RedisStateStore("redis://127.0.0.1:1/0", prefix="down", lock_ttl_ms=1000)
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.load("s")


def test_two_replicas_share_state_through_redis(make_client, redis_url: str) -> None:
    prefix = {"store": "redis", "redis_url": redis_url, "redis_key_prefix": "replicas"}
    replica_a = make_client(state_dir="a", **prefix)
    replica_b = make_client(state_dir="b", **prefix)
    first = replica_a.post("/v1/run_graph", json={"goal": "one", "federation_session_id": "r"})
    second = replica_b.post("/v1/run_graph", json={"goal": "two", "federation_session_id": "r"})
    assert first.status_code == second.status_code == 200
    body = second.json()
    assert body["resumed"] is True
    assert body["state"]["store"] == "redis"
    assert [h["goal"] for h in body["history"]] == ["one", "two"]
    assert len(body["messages"]) == 4
