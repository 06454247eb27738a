"""The SQL stores (SQLite, PostgreSQL): fenced leases, a dead holder's lease freed at
once, LangGraph's own savers keeping a thread's whole history, crash-safe SQLite."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_wrapper.store import PostgresStateStore, SqliteStateStore
from agent_wrapper.store.sql_store import LeaseLost, SqlStateStore
from tests.conftest import fresh_database


@pytest.fixture(params=["sqlite", "postgres"])
def sql_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    if request.param == "sqlite":
        return {"store": "sqlite", "state_dir": tmp_path / "state"}
    url = fresh_database(request.getfixturevalue("postgres_url"))
    return {"store": "postgres", "database_url": url, "state_dir": tmp_path / "state"}


@pytest.fixture
def sql_store(sql_settings: dict) -> Iterator[SqlStateStore]:
    if sql_settings["store"] == "sqlite":
        store: SqlStateStore = SqliteStateStore(sql_settings["state_dir"] / "federation.db",
                                                lock_ttl_ms=600)
    else:
        store = PostgresStateStore(sql_settings["database_url"], lock_ttl_ms=600)
    yield store
    store.close()


def test_a_worker_whose_lease_passed_cannot_write(sql_store: SqlStateStore) -> None:
    stale = sql_store.try_lock("fence-1")
    assert stale is not None
    sql_store.save("fence-1", {"by": "stale"}, stale)
    stale.stop_renewing()  # the worker stalls: its lease is no longer renewed
    time.sleep(0.8)
    fresh = sql_store.try_lock("fence-1")
    assert fresh is not None and fresh.fence == stale.fence + 1
    sql_store.save("fence-1", {"by": "fresh"}, fresh)
    with pytest.raises(LeaseLost, match="fencing token"):
        sql_store.save("fence-1", {"by": "stale, late"}, stale)
    assert sql_store.load("fence-1") == {"by": "fresh"}
    fresh.release()


def test_an_expired_lease_refuses_writes_even_before_anyone_takes_over(
        sql_store: SqlStateStore) -> None:
    lock = sql_store.try_lock("fence-2")
    assert lock is not None
    lock.stop_renewing()
    time.sleep(0.8)
    with pytest.raises(LeaseLost, match="expired"):
        sql_store.save("fence-2", {"late": True}, lock)
    assert sql_store.load("fence-2") is None


def test_a_live_lease_is_renewed_past_its_ttl(sql_store: SqlStateStore) -> None:
    lock = sql_store.try_lock("renew-1")
    assert lock is not None
    time.sleep(1.5)  # 2.5 TTLs: only renewal keeps it
    assert sql_store.try_lock("renew-1") is None
    sql_store.save("renew-1", {"ok": True}, lock)
    lock.release()
    assert sql_store.try_lock("renew-1") is not None


def test_every_held_lease_is_renewed_by_one_thread(sql_store: SqlStateStore) -> None:
    """Threads stay bounded: 20 running sessions do not cost 20 renewal threads."""
    import threading

    locks = [sql_store.try_lock(f"many-{n}") for n in range(20)]
    assert all(lock is not None for lock in locks)
    time.sleep(1.5)  # 2.5 TTLs: only renewal keeps them
    assert all(sql_store.try_lock(f"many-{n}") is None for n in range(20))
    renewers = [t for t in threading.enumerate() if t.name.startswith(("lease", "renew"))]
    assert [t.name for t in renewers] == ["lease-renewer"]
    for lock in locks:
        assert lock is not None
        lock.release()
    assert sql_store.try_lock("many-0") is not None


def test_a_graph_run_writes_durably_once_per_step_and_once_for_its_outcome(
        make_client, sql_settings: dict, monkeypatch) -> None:
    """Bookkeeping (the record's start, progress and events, the lease, the queue row,
    LangGraph's own rows) rides on the durable writes: two steps -> three fsyncs."""
    client: TestClient = make_client(**sql_settings)
    store = client.app.state.wrapper.store
    original = store.transaction
    durable_writes: list[str] = []

    def counting(lock_key: str | None = None, *, durable: bool = True):
        if durable and lock_key is not None:
            durable_writes.append(lock_key.split(":")[0])
        return original(lock_key, durable=durable)

    monkeypatch.setattr(store, "transaction", counting)
    reply = client.post("/v1/run_graph", json={"goal": "g", "federation_session_id": "dur-1",
                                               "request_id": "r-1"})
    assert reply.status_code == 200, reply.text
    assert [s["name"] for s in reply.json()["steps"]] == ["plan", "respond"]
    # One session save per step (its checkpoint), then the run's outcome.
    assert durable_writes == ["lock", "lock", "run"]
    assert store.load_run("dur-1", "r-1")["status"] == "completed"
    # The terminal event is logged just after the reply is ready.
    deadline = time.monotonic() + 10
    while store.load_run("dur-1", "r-1")["events"][-1]["type"] != "completed":
        assert time.monotonic() < deadline, "the terminal event never reached the record"
        time.sleep(0.05)
    if sql_settings["store"] == "sqlite":
        with store.langgraph_saver(None) as saver:  # LangGraph's commits: no fsync each
            assert saver.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_run_answered_before_it_ends_is_durable_before_the_answer(
        make_client, sql_settings: dict, monkeypatch) -> None:
    """``Prefer: respond-async``: the 202 promises the run, so its record and queue row are
    written durably before it, not as bookkeeping."""
    client: TestClient = make_client(**sql_settings)
    store = client.app.state.wrapper.store
    original = store.transaction
    writes: list[tuple[str, bool]] = []

    def recording(lock_key: str | None = None, *, durable: bool = True):
        if lock_key is not None:
            writes.append((lock_key.split(":")[0], durable))
        return original(lock_key, durable=durable)

    monkeypatch.setattr(store, "transaction", recording)
    reply = client.post("/v1/run_graph", headers={"Prefer": "respond-async"},
                        json={"goal": "g", "federation_session_id": "dur-2",
                              "request_id": "r-1"})
    assert reply.status_code == 202, reply.text
    # The first write of each (the record's start, the queue row) is durable.
    assert next(d for key, d in writes if key == "run") is True
    assert next(d for key, d in writes if key == "queue") is True
    deadline = time.monotonic() + 30
    while store.load_run("dur-2", "r-1")["status"] != "completed":
        assert time.monotonic() < deadline, "the accepted run never completed"
        time.sleep(0.05)


def test_a_killed_holder_frees_its_sessions_at_once(sql_settings: dict) -> None:
    """A worker process SIGKILLed while holding a lease (30 s TTL) does not block the
    session: its lease names a pid of this host that no longer exists."""
    script = (
        "import os, sys, signal\n"
        "from agent_wrapper.core.config import Settings\n"
        "from agent_wrapper.store import build_store\n"
        "store = build_store(Settings(**{k: v for k, v in eval(sys.argv[1]).items()}))\n"
        "assert store.try_lock('dead-1') is not None\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in sql_settings.items()}
    holder = subprocess.run([sys.executable, "-c", script, repr(settings)],
                            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    assert holder.returncode == -9
    from agent_wrapper.core.config import Settings
    from agent_wrapper.store import build_store

    store = build_store(Settings(lock_ttl_ms=30_000, **sql_settings))
    lock = store.try_lock("dead-1")
    assert lock is not None, "the dead holder's lease was free at once"
    lock.release()
    store.close()


def test_a_graph_thread_keeps_its_whole_history(make_client, sql_settings: dict) -> None:
    client: TestClient = make_client(**sql_settings)
    for goal in ("first question", "second question", "third question"):
        reply = client.post("/v1/run_graph", json={"goal": goal,
                                                   "federation_session_id": "hist-1"})
        assert reply.status_code == 200, reply.text
    assert [m["content"] for m in reply.json()["messages"] if m["role"] == "user"] == [
        "first question", "second question", "third question"]
    store = client.app.state.wrapper.store
    with store.langgraph_saver(None) as saver:
        history = list(saver.list({"configurable": {"thread_id": "hist-1"}}))
    # Each run stores its input and one checkpoint per node: nothing is pruned.
    assert len(history) >= 9
    steps = sorted({c.metadata.get("step") for c in history})
    assert steps[0] == -1 and len(steps) == len(history)


def test_sqlite_killed_mid_write_loses_no_acknowledged_state(tmp_path: Path) -> None:
    """kill -9 in a tight loop of committed saves: every save the loop acknowledged
    (printed) is in the database afterwards, and the file opens cleanly."""
    db = tmp_path / "federation.db"
    script = (
        "import sys\n"
        "from agent_wrapper.store import SqliteStateStore\n"
        "store = SqliteStateStore(sys.argv[1])\n"
        "for i in range(100000):\n"
        "    store.save(f's-{i % 50}', {'i': i, 'pad': 'x' * 4000})\n"
        "    print(i, flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    acknowledged = -1
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 300:
            proc.kill()
            break
    proc.wait()
    for line in proc.stdout:  # acknowledged before the kill landed
        acknowledged = int(line)
    store = SqliteStateStore(db)
    for i in range(acknowledged - 49, acknowledged + 1):
        document = store.load(f"s-{i % 50}")
        assert document is not None and document["i"] >= i
    store.close()


def test_a_postgres_restart_mid_run_costs_the_run_nothing(
        make_client, postgres_url: str) -> None:
    """PostgreSQL restarts while a graph waits between its two nodes: the run goes on
    (its connections are re-made) and completes; the first node's checkpoint, written
    before the restart, is what the run continues from."""
    from tests.conftest import StepGate, restart_postgres

    gate = StepGate(kind="checkpoint", name="plan")
    client = make_client(step_hook=gate, store="postgres",
                         database_url=fresh_database(postgres_url))
    accepted = client.post("/v1/run_graph", headers={"prefer": "respond-async"},
                           json={"goal": "survive a restart", "federation_session_id": "pg-1",
                                 "request_id": "r-1"})
    assert accepted.status_code == 202
    gate.wait_reached()
    restart_postgres()
    gate.release()
    deadline = time.monotonic() + 60
    record = {}
    while time.monotonic() < deadline:
        reply = client.get("/v1/sessions/pg-1/runs/r-1")
        record = reply.json() if reply.status_code == 200 else {}
        if record.get("status") in ("completed", "failed"):
            break
        time.sleep(0.1)
    assert record.get("status") == "completed", record
    assert record["attempt"] == 1
    assert [s["name"] for s in record["result"]["steps"]] == ["plan", "respond"]


@pytest.mark.parametrize("store", ["sqlite", "file"])
def test_idle_sessions_expire_with_their_records_and_checkpoints(make_client, store) -> None:
    client: TestClient = make_client(store=store, session_idle_ttl_s=2)
    body = {"goal": "remember me", "federation_session_id": "idle-1", "request_id": "r-1"}
    alice, bob = {"x-federation-principal": "alice"}, {"x-federation-principal": "bob"}
    assert client.post("/v1/run_graph", json=body, headers=alice).json()["resumed"] is False
    assert client.post("/v1/run_graph", json={**body, "request_id": "r-2"},
                       headers=alice).json()["resumed"]
    deadline = time.monotonic() + 15  # the sweeper runs every second at this TTL
    while client.get("/v1/sessions/idle-1/runs/r-1", headers=alice).status_code != 404:
        assert time.monotonic() < deadline, "the idle session was not expired"
        time.sleep(0.2)
    # Its owner was forgotten too: the id is free for anyone.
    fresh = client.post("/v1/run_graph", json={**body, "request_id": "r-3"}, headers=bob).json()
    assert fresh["resumed"] is False and [h["goal"] for h in fresh["history"]] == ["remember me"]
    assert [m["role"] for m in fresh["messages"]] == ["user", "assistant"], "thread forgotten"


def test_one_processs_concurrent_transactions_never_wait_inside_sqlite(tmp_path: Path) -> None:
    """Threads of one process queue on the store's mutex, not in SQLite's busy handler
    (which sleeps in 1-100 ms steps): with SQLite's busy wait off, 20 threads writing and
    reading at once still never meet a locked database."""
    import threading

    store = SqliteStateStore(tmp_path / "federation.db")
    connect = store.connect

    def connect_without_busy_wait():  # a busy database now raises instead of sleeping
        conn = connect()
        conn.execute("PRAGMA busy_timeout=0")
        return conn

    store.close()  # the pooled connections were made with the busy wait on
    store.connect = connect_without_busy_wait  # type: ignore[method-assign]
    errors: list[Exception] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                store.update_run("busy-1", f"r-{n}", lambda cur, i=i: {"i": i}, 60_000,
                                 durable=i % 2 == 0)
                assert store.load_run("busy-1", f"r-{n}") == {"i": i}
                store.save(f"busy-{n}", {"i": i})
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store.close()
