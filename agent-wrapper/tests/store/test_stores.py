"""Every Federation Storage backend (SQLite, PostgreSQL, file, Redis): round trip,
atomic replace, locks, safe keys, and run records (atomic read-modify-write, TTL
expiry)."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_wrapper.core.errors import InvalidInput, StoreUnavailable
from agent_wrapper.store import (
    FileStateStore,
    PostgresStateStore,
    RedisStateStore,
    SqliteStateStore,
    StateStore,
)
from tests.conftest import fresh_database


@pytest.fixture(params=["sqlite", "postgres", "file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        backend: StateStore = SqliteStateStore(tmp_path / "federation.db", lock_ttl_ms=2000)
    elif request.param == "postgres":
        url = fresh_database(request.getfixturevalue("postgres_url"))
        backend = PostgresStateStore(url, lock_ttl_ms=2000)
    elif request.param == "file":
        backend = FileStateStore(tmp_path / "state")
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


# -- run records ---------------------------------------------------------------------

def test_run_record_read_modify_write(store: StateStore) -> None:
    assert store.load_run("s-3", "r-1") is None
    created = store.update_run("s-3", "r-1", lambda cur: {"n": 1} if cur is None else None,
                               60_000)
    assert created == {"n": 1}
    # Returning None leaves the stored record as it is (and returns it).
    assert store.update_run("s-3", "r-1", lambda cur: None, 60_000) == {"n": 1}
    assert store.update_run("s-3", "r-1", lambda cur: {"n": cur["n"] + 1}, 60_000) == {"n": 2}
    assert store.load_run("s-3", "r-1") == {"n": 2}
    assert store.load_run("s-3", "r-2") is None
    assert store.load_run("other", "r-1") is None

    def refuse(_current: dict | None) -> dict:
        raise RuntimeError("aborted")

    with pytest.raises(RuntimeError):
        store.update_run("s-3", "r-1", refuse, 60_000)
    assert store.load_run("s-3", "r-1") == {"n": 2}, "an aborted update writes nothing"


def test_run_record_updates_are_atomic_across_threads(store: StateStore) -> None:
    def bump() -> None:
        for _ in range(15):
            store.update_run("s-4", "count", lambda cur: {"n": (cur or {"n": 0})["n"] + 1},
                             60_000)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.load_run("s-4", "count") == {"n": 60}


def test_run_records_expire_after_their_ttl(store: StateStore) -> None:
    store.update_run("s-5", "short", lambda cur: {"v": 1}, 150)
    store.update_run("s-5", "long", lambda cur: {"v": 2}, 60_000)
    assert store.load_run("s-5", "short") == {"v": 1}
    time.sleep(0.3)
    assert store.load_run("s-5", "short") is None
    seen: list[object] = []
    store.update_run("s-5", "short", lambda cur: seen.append(cur), 150)
    assert seen == [None], "an expired record reads as absent in updates too"
    assert store.load_run("s-5", "long") == {"v": 2}


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".x", "r" * 129, "a b"])
def test_unsafe_request_ids_never_reach_the_backend(store: StateStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.load_run("s", bad)
    with pytest.raises(ValueError):
        store.update_run("s", bad, lambda cur: {"x": 1}, 1000)


def test_file_store_deletes_expired_records_lazily(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    store.update_run("s-6", "a", lambda cur: {"v": 1}, 50)
    store.update_run("s-7", "b", lambda cur: {"v": 2}, 50)
    store.update_run("s-7", "c", lambda cur: {"v": 3}, 60_000)
    runs = tmp_path / "state" / "runs"
    time.sleep(0.1)
    assert store.load_run("s-6", "a") is None
    assert not (runs / "s-6" / "a.json").exists(), "deleted when read after expiry"
    assert store.sweep_expired_runs() == 1
    assert sorted(p.name for p in (runs / "s-7").glob("*.json")) == ["c.json"]


def test_the_file_store_removes_temp_files_a_killed_writer_left(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "runs" / "s-1").mkdir(parents=True)
    (state / ".s-1.abc123.tmp").write_text("{half")
    (state / "runs" / "s-1" / ".r-1.def456.tmp").write_text("{half")
    (state / "s-2.json").write_text("{}")
    store = FileStateStore(state)
    assert sorted(p.name for p in state.rglob("*") if p.is_file()) == ["s-2.json"]
    assert store.load("s-2") == {}


def test_the_first_claim_owns_the_session_until_it_is_deleted(store: StateStore) -> None:
    assert store.session_owner("owned-1") is None
    assert store.claim_session("owned-1", "alice") == "alice"
    assert store.claim_session("owned-1", "bob") == "alice"
    assert store.session_owner("owned-1") == "alice"
    assert store.session_owner("other") is None
    store.delete("owned-1")
    assert store.session_owner("owned-1") is None
    assert store.claim_session("owned-1", "bob") == "bob"


def test_concurrent_claims_agree_on_one_owner(store: StateStore) -> None:
    owners: list[str] = []
    start = threading.Barrier(8)

    def claim(principal: str) -> None:
        start.wait()
        owners.append(store.claim_session("contested", principal))

    threads = [threading.Thread(target=claim, args=(f"p{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(owners) == 8 and len(set(owners)) == 1, owners
    assert store.session_owner("contested") == owners[0]
