"""Schema migrations of the SQL stores: a database made by the previous release (its
tables, with rows in them) is migrated at start with every row kept and the version
recorded; several processes starting at once apply each migration once."""

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_wrapper.store import PostgresStateStore, SqliteStateStore
from agent_wrapper.store import migrations as schema
from agent_wrapper.store.sql_store import SqlStateStore
from tests.conftest import fresh_database

# Release 0.1's schema, as its sql_store.py made it (CREATE TABLE IF NOT EXISTS at every
# start, no version recorded): the historical version 1.
V1_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS federation_sessions (
        session_id TEXT PRIMARY KEY, document TEXT NOT NULL, updated_at_ms BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS federation_runs (
        session_id TEXT NOT NULL, request_id TEXT NOT NULL, record TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL, PRIMARY KEY (session_id, request_id))""",
    """CREATE TABLE IF NOT EXISTS federation_locks (
        session_id TEXT PRIMARY KEY, owner TEXT NOT NULL, fence BIGINT NOT NULL,
        holder TEXT NOT NULL, expires_at_ms BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS federation_owners (
        session_id TEXT PRIMARY KEY, owner TEXT NOT NULL, claimed_at_ms BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS federation_queue (
        session_id TEXT NOT NULL, request_id TEXT NOT NULL, job TEXT NOT NULL,
        enqueued_at_ms BIGINT NOT NULL, worker TEXT NOT NULL,
        lease_expires_at_ms BIGINT NOT NULL, PRIMARY KEY (session_id, request_id))""",
)
NOW = int(time.time() * 1000)
DOCUMENT = {"version": 2, "session_id": "old-1", "run_count": 1,
            "history": [{"request_id": "r-1", "goal": "before the upgrade"}], "agents": {}}
RECORD = {"version": 1, "federation_session_id": "old-1", "request_id": "r-1",
          "status": "completed", "attempt": 1, "owner": "o", "result": {"output": "done"}}
V1_ROWS = (
    ("INSERT INTO federation_sessions VALUES (?, ?, ?)", ("old-1", json.dumps(DOCUMENT), NOW)),
    ("INSERT INTO federation_runs VALUES (?, ?, ?, ?)",
     ("old-1", "r-1", json.dumps(RECORD), NOW + 3_600_000)),
    ("INSERT INTO federation_locks VALUES (?, ?, ?, ?, ?)", ("old-1", "", 3, "h:1", 0)),
    ("INSERT INTO federation_owners VALUES (?, ?, ?)", ("old-1", "alice", NOW)),
    # A run that waits, and an older one whose worker (another host) stopped renewing.
    ("INSERT INTO federation_queue VALUES (?, ?, ?, ?, ?, ?)",
     ("old-2", "r-1", json.dumps({"goal": "waiting"}), NOW - 5_000, "", 0)),
    ("INSERT INTO federation_queue VALUES (?, ?, ?, ?, ?, ?)",
     ("old-3", "r-1", json.dumps({"goal": "lapsed"}), NOW - 9_000, "h:2", NOW - 1_000)),
)


class Database:
    """A fresh database of one kind, reachable without the store (as release 0.1 left it)."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.path = tmp_path / "federation.db"
        else:
            self.url = fresh_database(request.getfixturevalue("postgres_url"))

    def execute_all(self, statements: list[tuple[str, tuple]]) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                for sql, params in statements:
                    conn.execute(sql, params)
            return
        import psycopg

        with psycopg.connect(self.url) as conn:
            for sql, params in statements:
                conn.execute(sql.replace("?", "%s"), params)

    def store(self) -> SqlStateStore:
        if self.kind == "sqlite":
            return SqliteStateStore(self.path)
        return PostgresStateStore(self.url, pool_size=2)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    return Database(request.param, request, tmp_path)


@pytest.fixture
def opened() -> Iterator[Callable[[SqlStateStore], SqlStateStore]]:
    stores: list[SqlStateStore] = []
    yield lambda store: stores.append(store) or store
    for store in stores:
        store.close()


def test_a_database_of_the_previous_release_is_migrated_with_its_rows_kept(
        database: Database, opened: Callable[[SqlStateStore], SqlStateStore]) -> None:
    database.execute_all([(sql, ()) for sql in V1_SCHEMA] + list(V1_ROWS))
    store = opened(database.store())
    assert store.schema_versions() == [1, 2]
    assert store.migrated == [1, 2]
    assert store.load("old-1") == DOCUMENT
    assert store.load_run("old-1", "r-1") == RECORD
    assert store.session_owner("old-1") == "alice"
    lock = store.try_lock("old-1")
    assert lock is not None and lock.fence == 4, "the fencing token went on from 3"
    lock.release()
    # The queue's rows: one waiting (its wait dates from its enqueue), and the lapsed
    # claim is handed back; both are claimed, oldest first.
    assert store.queue_stats() == (1, NOW - 5_000)
    claims = [store.claim_next(set()), store.claim_next(set()), store.claim_next(set())]
    assert [(c[0], c[2]) if c else None for c in claims] == [
        ("old-3", {"goal": "lapsed"}), ("old-2", {"goal": "waiting"}), None]

    # The next start finds everything recorded: nothing applied again, nothing lost.
    again = opened(database.store())
    assert again.migrated == [] and again.schema_versions() == [1, 2]
    assert again.load("old-1") == DOCUMENT


def test_a_new_database_gets_every_migration(
        database: Database, opened: Callable[[SqlStateStore], SqlStateStore]) -> None:
    store = opened(database.store())
    assert store.migrated == [m.version for m in schema.MIGRATIONS] == [1, 2]
    store.save("new-1", {"ok": True})
    assert store.load("new-1") == {"ok": True}


def test_processes_starting_at_once_apply_each_migration_once(
        database: Database, opened: Callable[[SqlStateStore], SqlStateStore]) -> None:
    """Four stores (each its own connections, as four worker processes) start together
    on a release-0.1 database: one migrates, the others wait for its lock and find the
    versions recorded; none fails."""
    database.execute_all([(sql, ()) for sql in V1_SCHEMA] + list(V1_ROWS))
    barrier = threading.Barrier(4)
    started: list[Any] = []

    def start() -> None:
        barrier.wait()
        try:
            started.append(opened(database.store()))
        except Exception as exc:  # collected for the assertion
            started.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert len(started) == 4 and all(isinstance(s, SqlStateStore) for s in started), started
    assert sorted(s.migrated for s in started) == [[], [], [], [1, 2]]
    assert started[0].schema_versions() == [1, 2]
    assert started[0].load("old-1") == DOCUMENT


def test_a_database_newer_than_this_release_is_used_with_a_warning(
        database: Database, opened: Callable[[SqlStateStore], SqlStateStore],
        caplog: pytest.LogCaptureFixture) -> None:
    database.store().close()
    database.execute_all([(f"INSERT INTO {schema.TABLE} VALUES (?, ?, ?)",  # noqa: S608
                           (schema.LATEST + 1, "from a newer release", NOW))])
    with caplog.at_level("WARNING"):
        store = opened(database.store())
    assert store.migrated == []
    assert f"newer than this release's {schema.LATEST}" in caplog.text
    store.save("still-1", {"ok": True})
    assert store.load("still-1") == {"ok": True}
