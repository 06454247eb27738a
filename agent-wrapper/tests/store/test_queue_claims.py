"""The run queue's claims on SQLite and PostgreSQL: more runs in flight than any scan
window, two workers claiming at once, a waiting run claimed as soon as a slot frees, no
run claimed twice and none left behind; sessions running elsewhere are skipped (not
spun on); dead and lapsed claims come back; an idle worker is woken by NOTIFY."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_wrapper.store import PostgresStateStore, SqliteStateStore, process_identity
from agent_wrapper.store.sql_store import HOST, SqlStateStore, _holder
from tests.conftest import StepGate, fresh_database

IN_FLIGHT = 500  # the old claim scanned the 200 oldest rows, running ones included
SLOTS = IN_FLIGHT // 2
LATE = 20


def _stores(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
            count: int) -> list[SqlStateStore]:
    if kind == "sqlite":
        return [SqliteStateStore(tmp_path / "federation.db") for _ in range(count)]
    url = fresh_database(request.getfixturevalue("postgres_url"))
    return [PostgresStateStore(url, pool_size=4) for _ in range(count)]


@pytest.fixture(params=["sqlite", "postgres"])
def two_workers(request: pytest.FixtureRequest,
                tmp_path: Path) -> Iterator[tuple[SqlStateStore, SqlStateStore]]:
    """Two store clients on one database: two workers' view of the queue."""
    first, second = _stores(request.param, request, tmp_path, 2)
    yield first, second
    first.close()
    second.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStateStore]:
    (only,) = _stores(request.param, request, tmp_path, 1)
    yield only
    only.close()


def _wait(store: SqlStateStore, session_id: str) -> None:
    assert store.enqueue(session_id, "r", {"session": session_id}, claimed=False,
                         max_queued=10_000)


def _fill(worker: SqlStateStore, mine: list[str], claimed: list[str]) -> None:
    """Claim until this worker's slots are full or nothing waits (a worker's loop)."""
    while len(mine) < SLOTS:
        item = worker.claim_next(set(mine))
        if item is None:
            return
        mine.append(item[0])
        claimed.append(item[0])


def _in_threads(*jobs) -> None:
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)


def test_500_runs_two_workers_every_waiting_run_is_claimed_as_a_slot_frees(
        two_workers: tuple[SqlStateStore, SqlStateStore]) -> None:
    first, second = two_workers
    for n in range(IN_FLIGHT):
        _wait(first, f"run-{n:03}")
    runs: tuple[list[str], list[str]] = ([], [])
    claimed: list[str] = []  # every claim either worker made, in order
    # Both workers claim at once until their slots are full: all 500 run.
    _in_threads(lambda: _fill(first, runs[0], claimed), lambda: _fill(second, runs[1], claimed))
    assert (len(runs[0]), len(runs[1])) == (SLOTS, SLOTS)
    assert sorted(claimed) == [f"run-{n:03}" for n in range(IN_FLIGHT)], "each exactly once"
    assert first.queued() == 0

    # 500 in flight, newer runs wait. Each time a run ends, its worker's next claim
    # takes the oldest waiting run at once: no poll, no window to fall out of.
    for n in range(LATE):
        _wait(second, f"late-{n:02}")
    assert first.queue_stats()[0] == LATE
    for n in range(LATE):
        worker, mine = (first, runs[0]) if n % 2 == 0 else (second, runs[1])
        ended = mine.pop(0)
        worker.dequeue(ended, "r")
        item = worker.claim_next(set(mine))
        assert item is not None and item[0] == f"late-{n:02}", (n, item)
        mine.append(item[0])
        claimed.append(item[0])
    assert first.claim_next(set()) is None and second.queued() == 0

    # Everything ends; nothing is left in the queue and nothing was claimed twice.
    for worker, mine in ((first, runs[0]), (second, runs[1])):
        for session_id in mine:
            worker.dequeue(session_id, "r")
    assert len(claimed) == len(set(claimed)) == IN_FLIGHT + LATE
    with first.transaction() as cur:
        assert first._execute(cur, "SELECT COUNT(*) FROM federation_queue").fetchone()[0] == 0


def test_two_workers_claiming_at_once_never_take_the_same_run(
        two_workers: tuple[SqlStateStore, SqlStateStore]) -> None:
    """Waiting runs arrive while both workers claim: every run is claimed exactly once."""
    first, second = two_workers
    claimed: list[tuple[int, str]] = []
    done = threading.Event()

    def produce() -> None:
        for n in range(200):
            _wait(first, f"p-{n:03}")
        done.set()

    def consume(worker: SqlStateStore, index: int) -> None:
        while True:
            finished = done.is_set()
            item = worker.claim_next(set())
            if item is not None:
                claimed.append((index, item[0]))
                worker.dequeue(item[0], "r")
            elif finished:
                return

    _in_threads(produce, lambda: consume(first, 0), lambda: consume(second, 1))
    sessions = [session for _, session in claimed]
    assert sorted(sessions) == [f"p-{n:03}" for n in range(200)]
    assert first.queued() == 0


def test_a_session_running_elsewhere_is_skipped_not_spun_on(store: SqlStateStore) -> None:
    """The oldest waiting run's session is held (another request of it runs): a claim
    takes the next run instead, and the held one once its session is free."""
    _wait(store, "held")
    _wait(store, "free")
    lock = store.try_lock("held")
    assert lock is not None
    item = store.claim_next(set())
    assert item is not None and item[0] == "free"
    assert store.claim_next(set()) is None
    assert store.claim_next({"held"}) is None
    lock.release()
    item = store.claim_next(set())
    assert item is not None and item[0] == "held"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_dead_and_lapsed_claims_come_back_and_live_ones_do_not(store: SqlStateStore) -> None:
    now = int(time.time() * 1000)
    # A restarted container: same hostname, and this live pid, but started at another
    # time (the worker is pid 7 in every start of an image).
    restarted = f"{HOST}:{os.getpid()}-1-{process_identity.BOOT}"
    rows = [("dead", f"{HOST}:{_dead_pid()}", now + 60_000),   # this host, process gone
            ("lapsed", "other-host:1", now - 1),               # its lease passed
            ("restarted", restarted, now + 60_000),           # its pid is another process
            ("live", "other-host:2", now + 60_000),            # another host, renewing
            ("mine", _holder(), now + 60_000)]                 # this live process
    with store.transaction("queue") as cur:
        for n, (session_id, worker, lease) in enumerate(rows):
            store._execute(cur, "INSERT INTO federation_queue (session_id, request_id, job, "
                                "enqueued_at_ms, worker, lease_expires_at_ms, "
                                "waiting_since_ms) VALUES (?, 'r', '{}', ?, ?, ?, ?)",
                           (session_id, now - 1000 + n, worker, lease, now - 1000 + n))
    taken = [store.claim_next(set()) for _ in range(4)]
    assert [item[0] if item else None for item in taken] == [
        "dead", "lapsed", "restarted", None]


def test_a_dead_holders_session_lease_does_not_hide_its_waiting_run(
        store: SqlStateStore) -> None:
    """A run waits for a session whose lease a killed process of this host still names:
    the lease is free (as ``try_lock`` sees it), so the claim takes the run."""
    now = int(time.time() * 1000)
    with store.transaction("lock:gone") as cur:
        store._execute(cur, "INSERT INTO federation_locks (session_id, owner, fence, holder, "
                            "expires_at_ms) VALUES ('gone', 'x', 7, ?, ?)",
                       (f"{HOST}:{_dead_pid()}", now + 60_000))
    _wait(store, "gone")
    item = store.claim_next(set())
    assert item is not None and item[0] == "gone"
    lock = store.try_lock("gone")
    assert lock is not None and lock.fence == 8, "the fence survived"
    lock.release()


def test_an_idle_worker_is_woken_by_notify_not_by_its_poll(make_client, postgres_url) -> None:
    """Two workers on PostgreSQL, both polling only once a minute. The first is full, so
    a new run waits in the queue; the idle worker takes it at once, woken by NOTIFY."""
    url = fresh_database(postgres_url)
    gate = StepGate()
    busy = make_client(step_hook=gate, store="postgres", database_url=url, max_runs=1,
                       run_poll_ms=60_000)
    make_client(store="postgres", database_url=url, max_runs=1, run_poll_ms=60_000,
                state_dir="idle")
    try:
        held = busy.post("/v1/run_graph", headers={"prefer": "respond-async"}, json={
            "goal": "hold", "federation_session_id": "n-1", "request_id": "r"})
        assert held.status_code == 202
        gate.wait_reached()
        waiting = busy.post("/v1/run_graph", headers={"prefer": "respond-async"}, json={
            "goal": "wake", "federation_session_id": "n-2", "request_id": "r"})
        assert waiting.status_code == 202 and waiting.json()["status"] == "submitted"
        deadline = time.monotonic() + 30  # half the poll interval
        status = None
        while time.monotonic() < deadline:
            status = busy.get("/v1/sessions/n-2/runs/r").json()["status"]
            if status == "completed":
                break
            time.sleep(0.05)
        assert status == "completed", "the idle worker was not woken"
        assert not gate.released.is_set(), "the busy worker's only slot was held throughout"
    finally:
        gate.release()
