"""Federation Storage on a SQL database: SQLite (one file, the embedded default) or
PostgreSQL (shared by every wrapper worker and replica).

Three tables hold what the file and Redis stores keep as documents, in one database
beside LangGraph's own checkpoint tables (``langgraph-checkpoint-sqlite`` /
``-postgres``, created by their ``setup()``):

* ``federation_sessions``: one JSON document per session (history, crew checkpoints);
* ``federation_runs``: run records, with their expiry;
* ``federation_locks``: the session lock as a **lease** with a **fencing token**.

A run takes the lease (owner token, ``fence`` + 1, expiry ``lock_ttl_ms`` ahead) and
renews it every ttl/3. Every save it makes carries its lease: the write happens in one
transaction with a check that the lease is still its own and unexpired, so a worker
whose lease passed (stalled, partitioned, taken over) cannot overwrite what its
successor wrote; it gets ``LeaseLost`` instead. A lease whose holder is a process of
this host that no longer exists is free at once (a killed worker does not block its
sessions for a TTL); a holder on another host is trusted until its lease expires.

SQLite runs in WAL mode. A durable write commits with ``synchronous=FULL`` (the WAL
is fsynced before the commit returns); bookkeeping (``durable=False``, see
``store/base.py``) and LangGraph's checkpoint writes commit with ``NORMAL``: appended
to the same WAL without an fsync, so the next durable commit, a step's session save,
makes them durable with it. ``kill -9`` at any point loses no committed write, a power
cut none that a durable write followed, and a torn write is rolled back by SQLite itself
on the next open (nothing to clean by hand). PostgreSQL does the same with
``synchronous_commit = off`` for bookkeeping.

Connections are pooled (SQLite: one per concurrent user, reused across runs; run
threads are short-lived, so per-thread connections were opened once per run).

**The run queue** (``federation_queue``). A claim reads waiting rows only, oldest
first, through an index of waiting rows (``worker = ''``), skipping sessions that run
elsewhere (a held lease): runs in flight are never scanned, however many there are.
On PostgreSQL a claim is one ``UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED)``
without any cluster-wide lock: concurrent claimers take different rows and never wait
for each other; a waiting run or a run handed back sends ``NOTIFY federation_queue``,
which wakes idle workers at once (the poll stays as the fallback). SQLite has one
writer at a time anyway: a claim is a select and an update under ``BEGIN IMMEDIATE``.
Claims whose lease lapsed, or whose worker is a dead process of this host, are handed
back to waiting by any worker (``reap_claims``, at most once a second each).

The schema is versioned and migrated at start (``store/migrations.py``).
"""

import contextlib
import json
import logging
import queue
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent_wrapper import metrics
from agent_wrapper.core.errors import RunSuperseded, StoreUnavailable
from agent_wrapper.store import migrations
from agent_wrapper.store.base import RenewedLock, RunMutator, SessionLock, StateStore
from agent_wrapper.store.process_identity import process_alive, process_tag
from agent_wrapper.store.session_id import validate_request_id, validate_session_id

log = logging.getLogger(__name__)
HOST = socket.gethostname()
# How often one store hands back lapsed or dead claims (``reap_claims``).
REAP_INTERVAL_S = 1.0
# The PostgreSQL channel that tells workers a run waits.
QUEUE_CHANNEL = "federation_queue"
# The PostgreSQL advisory lock every starting process takes to migrate the schema.
MIGRATION_LOCK = "federation:schema-migrations"
MIGRATION_POLL_S = 0.05


def _now_ms() -> int:
    return int(time.time() * 1000)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _holder() -> str:
    """This process as the holder of claims and leases: ``<host>:<pid>-<ticks>-<boot>``
    (a restarted container has the same hostname and often the same pid)."""
    return f"{HOST}:{process_tag()}"


def _holder_gone(holder: str) -> bool:
    """True when ``holder`` is a process of this host that has exited (or whose pid
    another process has now). ``<host>:<pid>`` holders are an earlier release's."""
    host, _, tag = holder.rpartition(":")
    if host != HOST:
        return False
    pid, _, rest = tag.partition("-")
    ticks, _, boot = rest.partition("-")
    if not pid.isdigit():
        return False
    return not process_alive(int(pid), ticks or None, boot if rest else None)


class LeaseLost(RunSuperseded):
    """The run's session lease expired or was taken over: its writes are refused."""


class SqlLock(RenewedLock):
    """A held session lease, renewed in the background until released."""

    def __init__(self, store: "SqlStateStore", session_id: str, owner: str, fence: int) -> None:
        self.store = store
        self.session_id = session_id
        self.owner = owner
        self.fence = fence
        super().__init__(session_id, store.lock_ttl_ms / 3000)

    def _renew(self) -> bool:
        # A failed renewal shows up where it matters: the run's next save.
        try:
            return self.store.renew(self)
        except StoreUnavailable:
            return True

    def _let_go(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # Else the lease expires.
            self.store.release(self)


class SqlStateStore(StateStore):
    """Sessions, run records, leases and the run queue in SQLite or PostgreSQL."""

    orders_writes = True

    def __init__(self, kind: str, *, lock_ttl_ms: int = 30_000) -> None:
        self.kind = kind
        self.lock_ttl_ms = lock_ttl_ms
        self._reap_mutex = threading.Lock()
        self._last_reap = float("-inf")
        self.migrated: list[int] = []  # the migrations this store applied at its start

    # -- the dialect: a transaction, and "?" placeholders rewritten for psycopg ----------
    @contextlib.contextmanager
    def transaction(self, lock_key: str | None = None, *,
                    durable: bool = True) -> Iterator[Any]:
        """A cursor inside one transaction, serialised per ``lock_key``; a write that is
        not ``durable`` is bookkeeping (see ``store/base.py``)."""
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return sql

    def _execute(self, cursor: Any, sql: str, params: tuple = ()) -> Any:
        cursor.execute(self._q(sql), params)
        return cursor

    # -- documents --------------------------------------------------------------------
    def load(self, session_id: str) -> dict[str, Any] | None:
        validate_session_id(session_id)
        with self.transaction() as cur:
            row = self._execute(cur, "SELECT document FROM federation_sessions WHERE "
                                     "session_id = ?", (session_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def save(self, session_id: str, document: dict[str, Any],
             lock: SessionLock | None = None, *, durable: bool = True) -> None:
        validate_session_id(session_id)
        with self.transaction(f"lock:{session_id}", durable=durable) as cur:
            if isinstance(lock, SqlLock):
                self._check_lease(cur, lock)
            self._execute(cur, "INSERT INTO federation_sessions (session_id, document, "
                               "updated_at_ms) VALUES (?, ?, ?) ON CONFLICT (session_id) DO "
                               "UPDATE SET document = excluded.document, "
                               "updated_at_ms = excluded.updated_at_ms",
                          (session_id, _dumps(document), _now_ms()))

    def delete(self, session_id: str) -> None:
        validate_session_id(session_id)
        with self.transaction() as cur:
            for table in ("federation_sessions", "federation_owners"):
                self._execute(cur, f"DELETE FROM {table} WHERE session_id = ?",  # noqa: S608
                              (session_id,))

    # -- ownership ----------------------------------------------------------------------
    def claim_session(self, session_id: str, principal: str) -> str:
        validate_session_id(session_id)
        # Bookkeeping: the owner only protects what the session's run stores, and that
        # run's first durable write carries the claim to disk with it.
        with self.transaction(durable=False) as cur:
            self._execute(cur, "INSERT INTO federation_owners (session_id, owner, "
                               "claimed_at_ms) VALUES (?, ?, ?) ON CONFLICT (session_id) "
                               "DO NOTHING", (session_id, principal, _now_ms()))
            row = self._execute(cur, "SELECT owner FROM federation_owners WHERE "
                                     "session_id = ?", (session_id,)).fetchone()
        return row[0]

    def session_owner(self, session_id: str) -> str | None:
        validate_session_id(session_id)
        with self.transaction() as cur:
            row = self._execute(cur, "SELECT owner FROM federation_owners WHERE "
                                     "session_id = ?", (session_id,)).fetchone()
        return None if row is None else row[0]

    # -- leases -----------------------------------------------------------------------
    def try_lock(self, session_id: str) -> SessionLock | None:
        validate_session_id(session_id)
        owner = secrets.token_hex(16)
        now = _now_ms()
        # Leases are bookkeeping: a lease lost to a power cut had expired by restart.
        with self.transaction(f"lock:{session_id}", durable=False) as cur:
            row = self._execute(cur, "SELECT owner, fence, holder, expires_at_ms FROM "
                                     "federation_locks WHERE session_id = ?",
                                (session_id,)).fetchone()
            if row is not None and row[0] and row[3] > now and not _holder_gone(row[2]):
                return None
            fence = (row[1] if row is not None else 0) + 1
            self._execute(cur, "INSERT INTO federation_locks (session_id, owner, fence, "
                               "holder, expires_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                               "(session_id) DO UPDATE SET owner = excluded.owner, "
                               "fence = excluded.fence, holder = excluded.holder, "
                               "expires_at_ms = excluded.expires_at_ms",
                          (session_id, owner, fence, _holder(), now + self.lock_ttl_ms))
        return SqlLock(self, session_id, owner, fence)

    def renew(self, lock: SqlLock) -> bool:
        with self.transaction(f"lock:{lock.session_id}", durable=False) as cur:
            updated = self._execute(cur, "UPDATE federation_locks SET expires_at_ms = ? "
                                         "WHERE session_id = ? AND owner = ? AND fence = ?",
                                    (_now_ms() + self.lock_ttl_ms, lock.session_id,
                                     lock.owner, lock.fence)).rowcount
        return updated == 1

    def release(self, lock: SqlLock) -> None:
        with self.transaction(f"lock:{lock.session_id}", durable=False) as cur:
            # The fence stays: the next holder's token is larger than every earlier one.
            self._execute(cur, "UPDATE federation_locks SET owner = '', expires_at_ms = 0 "
                               "WHERE session_id = ? AND owner = ?",
                          (lock.session_id, lock.owner))

    def _check_lease(self, cur: Any, lock: SqlLock) -> None:
        row = self._execute(cur, "SELECT owner, fence, expires_at_ms FROM federation_locks "
                                 "WHERE session_id = ?", (lock.session_id,)).fetchone()
        if row is None or row[0] != lock.owner or row[1] != lock.fence:
            raise LeaseLost(f"session {lock.session_id!r} was taken over by another worker "
                            f"(fencing token {lock.fence} is stale); this run's writes are "
                            "refused")
        if row[2] <= _now_ms():
            raise LeaseLost(f"the lease on session {lock.session_id!r} expired before this "
                            "write; the run stops so that a newer holder is never overwritten")

    def check_lease(self, lock: SessionLock | None) -> None:
        """Raise ``LeaseLost`` unless ``lock`` still holds its session's lease."""
        if isinstance(lock, SqlLock):
            with self.transaction() as cur:
                self._check_lease(cur, lock)

    # -- run records ----------------------------------------------------------------------
    def load_run(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        validate_session_id(session_id)
        validate_request_id(request_id)
        with self.transaction() as cur:
            row = self._execute(cur, "SELECT record, expires_at_ms FROM federation_runs "
                                     "WHERE session_id = ? AND request_id = ?",
                                (session_id, request_id)).fetchone()
        if row is None or row[1] <= _now_ms():
            return None
        return json.loads(row[0])

    def update_run(self, session_id: str, request_id: str, mutate: RunMutator,
                   ttl_ms: int, *, durable: bool = True) -> dict[str, Any] | None:
        validate_session_id(session_id)
        validate_request_id(request_id)
        with self.transaction(f"run:{session_id}/{request_id}", durable=durable) as cur:
            row = self._execute(cur, "SELECT record, expires_at_ms FROM federation_runs "
                                     "WHERE session_id = ? AND request_id = ?",
                                (session_id, request_id)).fetchone()
            current = json.loads(row[0]) if row is not None and row[1] > _now_ms() else None
            new = mutate(current)
            if new is None:
                return current
            self._execute(cur, "INSERT INTO federation_runs (session_id, request_id, record, "
                               "expires_at_ms) VALUES (?, ?, ?, ?) ON CONFLICT (session_id, "
                               "request_id) DO UPDATE SET record = excluded.record, "
                               "expires_at_ms = excluded.expires_at_ms",
                          (session_id, request_id, _dumps(new), _now_ms() + max(1, ttl_ms)))
            return new

    def expire_idle_sessions(self, idle_s: float) -> int:
        cutoff = _now_ms() - int(idle_s * 1000)
        with self.transaction() as cur:
            idle = self._execute(cur, "SELECT session_id, document FROM federation_sessions "
                                      "WHERE updated_at_ms < ?", (cutoff,)).fetchall()
        expired = 0
        for session_id, document in idle:
            lock = self.try_lock(session_id)
            if lock is None:
                continue  # running right now: not idle
            try:
                agents = json.loads(document).get("agents") or {}
                threads = [session_id, *(f"{session_id}#{name}" for name in agents)]
                with self.langgraph_saver(None) as saver:
                    for thread in threads:
                        saver.delete_thread(thread)
                with self.transaction(f"lock:{session_id}") as cur:
                    for table in ("federation_sessions", "federation_runs", "federation_queue",
                                  "federation_owners"):
                        self._execute(cur, f"DELETE FROM {table} WHERE session_id = ?",  # noqa: S608
                                      (session_id,))
                expired += 1
            finally:
                lock.release()
        # Owners of sessions that never saved a document (their first run failed early).
        with self.transaction() as cur:
            self._execute(cur, "DELETE FROM federation_owners WHERE claimed_at_ms < ? AND "
                               "session_id NOT IN (SELECT session_id FROM federation_sessions) "
                               "AND session_id NOT IN (SELECT session_id FROM federation_queue)",
                          (cutoff,))
        return expired

    # -- the run queue ----------------------------------------------------------------------
    # The transaction key of a claim and of reaping: SQLite needs its write lock taken up
    # front (``BEGIN IMMEDIATE``); PostgreSQL none (row locks, see the module doc).
    claim_lock_key: str | None = "claim"

    def enqueue(self, session_id: str, request_id: str, job: dict[str, Any], *,
                claimed: bool, max_queued: int, durable: bool = True) -> bool:
        """Add an accepted run, claimed by this worker already (it runs it now) or
        waiting. False when ``max_queued`` runs already wait (the caller answers 503).
        A waiting run is always written durably (its queue row is all there is of it);
        a claimed one is bookkeeping with ``durable=False`` (nothing is acknowledged
        before its outcome). Only waiting runs serialise (on one key: the count of
        waiting runs stays exact); a claimed run locks its own row only."""
        now = _now_ms()
        key = "queue" if not claimed else f"queue:{session_id}/{request_id}"
        with self.transaction(key, durable=durable or not claimed) as cur:
            if not claimed:
                waiting = self._execute(cur, "SELECT COUNT(*) FROM federation_queue WHERE "
                                             "worker = ''").fetchone()[0]
                if waiting >= max_queued:
                    return False
            self._execute(cur, "INSERT INTO federation_queue (session_id, request_id, job, "
                               "enqueued_at_ms, worker, lease_expires_at_ms, "
                               "waiting_since_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                               "(session_id, request_id) DO UPDATE SET job = excluded.job, "
                               "worker = excluded.worker, lease_expires_at_ms = "
                               "excluded.lease_expires_at_ms, waiting_since_ms = "
                               "excluded.waiting_since_ms",
                          (session_id, request_id, _dumps(job), now,
                           _holder() if claimed else "",
                           now + self.lock_ttl_ms if claimed else 0, now))
            if not claimed:
                self._notify_queue(cur)
        return True

    def claim_next(self, busy_sessions: set[str]) -> tuple[str, str, dict[str, Any]] | None:
        """Claim the oldest waiting run: ``(session_id, request_id, job)``, or None.
        Sessions in ``busy_sessions`` (this worker runs them already) and sessions whose
        lease another run holds are skipped. Lapsed and dead claims are handed back to
        waiting first (at most once a second), so their runs are claimed in turn."""
        started = time.monotonic()
        self._reap_if_due()
        now = _now_ms()
        row = self._claim_row(sorted(busy_sessions), now)
        metrics.record_claim(self.kind, time.monotonic() - started,
                             None if row is None else max(0, now - max(row[3], row[4])))
        if row is None:
            return None
        return row[0], row[1], json.loads(row[2])

    def _claim_row(self, busy: list[str], now: int) -> tuple | None:
        """Claim one waiting row: (session_id, request_id, job, enqueued_at_ms,
        waiting_since_ms), or None. SQLite: select and update under its write lock."""
        skip = f"AND session_id NOT IN ({', '.join('?' * len(busy))}) " if busy else ""
        with self.transaction(self.claim_lock_key, durable=False) as cur:
            row = self._execute(cur, "SELECT session_id, request_id, job, enqueued_at_ms, "  # noqa: S608 (placeholders only)
                                     "waiting_since_ms FROM federation_queue q WHERE "
                                     f"worker = '' {skip}AND NOT EXISTS (SELECT 1 FROM "
                                     "federation_locks l WHERE l.session_id = q.session_id "
                                     "AND l.owner <> '' AND l.expires_at_ms > ?) ORDER BY "
                                     "enqueued_at_ms LIMIT 1", (*busy, now)).fetchone()
            if row is not None:
                self._execute(cur, "UPDATE federation_queue SET worker = ?, "
                                   "lease_expires_at_ms = ? WHERE session_id = ? AND "
                                   "request_id = ?",
                              (_holder(), now + self.lock_ttl_ms, row[0], row[1]))
        return row

    def _reap_if_due(self) -> None:
        with self._reap_mutex:
            if time.monotonic() - self._last_reap < REAP_INTERVAL_S:
                return
            self._last_reap = time.monotonic()
        self.reap_claims()

    def reap_claims(self) -> int:
        """Hand back to waiting the claims whose lease lapsed or whose worker is a dead
        process of this host, and free the session leases of dead processes of this host
        (``try_lock`` would take them anyway); returns how many claims went back."""
        now = _now_ms()
        with self.transaction() as cur:
            workers = self._execute(cur, "SELECT DISTINCT worker FROM federation_queue "
                                         "WHERE worker <> ''").fetchall()
            holders = self._execute(cur, "SELECT DISTINCT holder FROM federation_locks "
                                         "WHERE owner <> ''").fetchall()
        dead_workers = [w for (w,) in workers if _holder_gone(w)]
        dead_holders = [h for (h,) in holders if _holder_gone(h)]
        with self.transaction(self.claim_lock_key, durable=False) as cur:
            freed = self._free_claims(cur, now, dead_workers, dead_holders)
            if freed or dead_holders:
                self._notify_queue(cur)
        return freed

    def _free_claims(self, cur: Any, now: int, dead_workers: list[str],
                     dead_holders: list[str]) -> int:
        dead = f" OR worker IN ({', '.join('?' * len(dead_workers))})" if dead_workers else ""
        freed = self._execute(cur, "UPDATE federation_queue SET worker = '', "  # noqa: S608
                                   "lease_expires_at_ms = 0, waiting_since_ms = ? WHERE "
                                   f"worker <> '' AND (lease_expires_at_ms <= ?{dead})",
                              (now, now, *dead_workers)).rowcount
        if dead_holders:  # the fence stays, as in ``release``
            self._execute(cur, "UPDATE federation_locks SET owner = '', expires_at_ms = 0 "  # noqa: S608
                               "WHERE owner <> '' AND holder IN "
                               f"({', '.join('?' * len(dead_holders))})", tuple(dead_holders))
        return freed

    def renew_claims(self) -> None:
        """Extend the leases of every run this worker process has claimed."""
        with self.transaction(durable=False) as cur:
            self._execute(cur, "UPDATE federation_queue SET lease_expires_at_ms = ? WHERE "
                               "worker = ?", (_now_ms() + self.lock_ttl_ms, _holder()))

    def requeue(self, session_id: str, request_id: str) -> None:
        """Hand a claimed run back (this worker stops): another worker continues it."""
        with self.transaction(f"queue:{session_id}/{request_id}") as cur:
            self._execute(cur, "UPDATE federation_queue SET worker = '', "
                               "lease_expires_at_ms = 0, waiting_since_ms = ? WHERE "
                               "session_id = ? AND request_id = ? AND worker = ?",
                          (_now_ms(), session_id, request_id, _holder()))
            self._notify_queue(cur)

    def dequeue(self, session_id: str, request_id: str) -> None:
        """The run ended (whatever its outcome): it leaves the queue. Bookkeeping: a row
        left by a power cut is claimed again, finds its run ended and is dropped."""
        with self.transaction(f"queue:{session_id}/{request_id}", durable=False) as cur:
            self._execute(cur, "DELETE FROM federation_queue WHERE session_id = ? AND "
                               "request_id = ?", (session_id, request_id))

    def in_queue(self, session_id: str, request_id: str) -> bool:
        with self.transaction() as cur:
            return self._execute(cur, "SELECT 1 FROM federation_queue WHERE session_id = ? "
                                      "AND request_id = ?",
                                 (session_id, request_id)).fetchone() is not None

    def queued(self) -> int:
        return self.queue_stats()[0]

    def queue_stats(self) -> tuple[int, int | None]:
        """How many runs wait, and since when the oldest waits (epoch ms, None when none
        does): one read of the waiting-rows index, for the queue metrics."""
        with self.transaction() as cur:
            count, oldest = self._execute(
                cur, "SELECT COUNT(*), MIN(CASE WHEN waiting_since_ms > 0 THEN "
                     "waiting_since_ms ELSE enqueued_at_ms END) FROM federation_queue WHERE "
                     "worker = ''").fetchone()
        return (int(count), int(oldest)) if count else (0, None)

    def _notify_queue(self, cur: Any) -> None:
        """Tell idle workers that a run waits (PostgreSQL; SQLite workers poll)."""

    def watch_queue(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another worker makes a run wait (PostgreSQL's
        ``LISTEN``); SQLite workers have only their poll."""

    def schema_versions(self) -> list[int]:
        """The schema migrations the database has recorded."""
        with self.transaction() as cur:
            return migrations.recorded_versions(cur, self._execute)

    def sweep_expired_runs(self) -> int:
        with self.transaction() as cur:
            return self._execute(cur, "DELETE FROM federation_runs WHERE expires_at_ms <= ?",
                                 (_now_ms(),)).rowcount

    def ping(self) -> None:
        with self.transaction() as cur:
            self._execute(cur, "SELECT 1").fetchone()


class _SqliteConnection(sqlite3.Connection):
    """A pooled connection that remembers its ``synchronous`` setting."""

    durable = True


class SqliteStateStore(SqlStateStore):
    """The embedded default: one SQLite file, ``<state dir>/federation.db``."""

    def __init__(self, path: Path, *, lock_ttl_ms: int = 30_000) -> None:
        super().__init__("sqlite", lock_ttl_ms=lock_ttl_ms)
        self.path = Path(path)
        self._idle: queue.SimpleQueue[_SqliteConnection] = queue.SimpleQueue()
        # One transaction at a time per process. Concurrent connections of one process
        # only contend inside SQLite (the write lock, the WAL's few read-mark slots,
        # auto-checkpoints), where a loser sleeps in SQLite's busy handler (1, 2, 5, ...
        # 100 ms steps): 100 concurrent graphs in one worker made 133 such sleeps per
        # run (strace); here they queue on a mutex and wake as soon as it is free (0
        # sleeps; the burst's wall time, bound by CPU, did not change). Reentrant: a
        # LangGraph ``list()`` generator holds it while its consumer reads on.
        self.serial = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # BEGIN IMMEDIATE: the database's write lock; a second process starting at
            # once waits for it, then finds the migrations recorded.
            with self.transaction("migrate") as cur:
                self.migrated = migrations.apply(cur, self._execute)
            with self._pooled() as conn:
                from langgraph.checkpoint.sqlite import SqliteSaver

                SqliteSaver(conn).setup()  # LangGraph's tables, once per store
        except (OSError, sqlite3.Error) as exc:
            metrics.store_error(self.kind, exc)
            raise StoreUnavailable(f"sqlite store {self.path} unusable: {exc}") from exc
        self.sweep_expired_runs()

    def connect(self) -> _SqliteConnection:
        """A new connection with the store's settings."""
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                               check_same_thread=False, factory=_SqliteConnection)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced before it returns (acknowledged = durable).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[_SqliteConnection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self.connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:  # a failed rollback: never hand out an open one
                conn.close()
            else:
                self._idle.put(conn)

    @staticmethod
    def _synchronous(conn: _SqliteConnection, durable: bool) -> None:
        if conn.durable != durable:
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            conn.durable = durable

    @contextlib.contextmanager
    def transaction(self, lock_key: str | None = None, *,
                    durable: bool = True) -> Iterator[Any]:
        with contextlib.ExitStack() as held:
            held.enter_context(self.serial)
            try:
                conn = held.enter_context(self._pooled())
                self._synchronous(conn, durable)
                cur = conn.cursor()
                # IMMEDIATE takes SQLite's write lock now: read-modify-writes never
                # interleave.
                cur.execute("BEGIN IMMEDIATE" if lock_key else "BEGIN")
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc
            try:
                yield cur
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
                raise
            try:
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
                raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        metrics.store_error(self.kind, exc)
        return StoreUnavailable(f"sqlite store {self.path}: {exc}")

    @contextlib.contextmanager
    def langgraph_saver(self, lock: SessionLock | None) -> Iterator[Any]:
        with self._pooled() as conn:
            # The saver's commits are bookkeeping: the run's session save after each
            # step (durable) carries them to disk.
            self._synchronous(conn, False)
            saver = _sqlite_saver(self, lock)(conn)
            saver.is_setup = True
            yield saver

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class PostgresStateStore(SqlStateStore):
    """The shared store: PostgreSQL, for several wrapper workers and replicas."""

    def __init__(self, url: str, *, lock_ttl_ms: int = 30_000, pool_size: int = 10) -> None:
        super().__init__("postgres", lock_ttl_ms=lock_ttl_ms)
        import psycopg
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self.url = url
        try:
            # check: a connection is tested when taken from the pool, so a PostgreSQL
            # restart costs the running runs nothing but a reconnect.
            self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True,
                                       timeout=10, kwargs={"autocommit": True},
                                       check=ConnectionPool.check_connection)
            self.pool.wait(timeout=10)
            self._migrate()
        except Exception as exc:
            metrics.store_error(self.kind, exc)
            raise StoreUnavailable(f"postgres store unusable: {_safe(exc)}") from exc
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None

    def _migrate(self) -> None:
        """Our migrations and LangGraph's ``setup()`` (its own versioned tables), under
        one session advisory lock: of several processes starting at once, one migrates
        and the others wait, then find everything recorded."""
        with self.pool.connection() as conn:
            # Polled, not waited for in one statement: a waiting statement holds a
            # snapshot, and LangGraph's setup (CREATE INDEX CONCURRENTLY) waits for every
            # snapshot of the database, on another connection: an unseen deadlock.
            while not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                   (MIGRATION_LOCK,)).fetchone()[0]:
                time.sleep(MIGRATION_POLL_S)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    self.migrated = migrations.apply(cur, self._execute)
                self._saver_setup()
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                             (MIGRATION_LOCK,))

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextlib.contextmanager
    def transaction(self, lock_key: str | None = None, *,
                    durable: bool = True) -> Iterator[Any]:
        psycopg = self._psycopg
        try:
            conn_cm = self.pool.connection()
            conn = conn_cm.__enter__()
        except Exception as exc:
            metrics.store_error(self.kind, exc)
            raise StoreUnavailable(f"postgres unavailable: {_safe(exc)}") from exc
        failed: BaseException | None = None
        try:
            with conn.transaction(), conn.cursor() as cur:
                if not durable:
                    # Committed without waiting for the WAL flush; the next durable
                    # commit (ordered after it in the WAL) flushes it.
                    cur.execute("SET LOCAL synchronous_commit = off")
                if lock_key is not None:
                    # Serialises read-modify-writes of one key across every worker.
                    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                (lock_key,))
                yield cur
        except psycopg.Error as exc:
            failed = exc
            metrics.store_error(self.kind, exc)
            raise StoreUnavailable(f"postgres unavailable: {_safe(exc)}") from exc
        except BaseException as exc:
            failed = exc
            raise
        finally:
            conn_cm.__exit__(type(failed) if failed else None, failed, None)

    # -- the run queue: row locks instead of a queue lock, and LISTEN/NOTIFY ---------------
    claim_lock_key = None

    def _claim_row(self, busy: list[str], now: int) -> tuple | None:
        """One statement: lock the oldest waiting row nobody else is claiming (``SKIP
        LOCKED``: concurrent claimers take the next rows, none waits) and claim it."""
        with self.transaction(durable=False) as cur:
            return self._execute(
                cur, "UPDATE federation_queue q SET worker = ?, lease_expires_at_ms = ? "
                     "FROM (SELECT session_id, request_id FROM federation_queue c WHERE "
                     "c.worker = '' AND c.session_id <> ALL(?::text[]) AND NOT EXISTS "
                     "(SELECT 1 FROM federation_locks l WHERE l.session_id = c.session_id "
                     "AND l.owner <> '' AND l.expires_at_ms > ?) ORDER BY c.enqueued_at_ms "
                     "LIMIT 1 FOR UPDATE OF c SKIP LOCKED) pick WHERE q.session_id = "
                     "pick.session_id AND q.request_id = pick.request_id RETURNING "
                     "q.session_id, q.request_id, q.job, q.enqueued_at_ms, q.waiting_since_ms",
                (_holder(), now + self.lock_ttl_ms, busy, now)).fetchone()

    def _free_claims(self, cur: Any, now: int, dead_workers: list[str],
                     dead_holders: list[str]) -> int:
        # SKIP LOCKED: reapers of several workers never wait for (or deadlock on) rows
        # another one is handing back or claiming.
        freed = self._execute(cur, "UPDATE federation_queue q SET worker = '', "
                                   "lease_expires_at_ms = 0, waiting_since_ms = ? FROM "
                                   "(SELECT session_id, request_id FROM federation_queue WHERE "
                                   "worker <> '' AND (lease_expires_at_ms <= ? OR worker = "
                                   "ANY(?::text[])) FOR UPDATE SKIP LOCKED) lapsed WHERE "
                                   "q.session_id = lapsed.session_id AND q.request_id = "
                                   "lapsed.request_id", (now, now, dead_workers)).rowcount
        if dead_holders:
            self._execute(cur, "UPDATE federation_locks l SET owner = '', expires_at_ms = 0 "
                               "FROM (SELECT session_id FROM federation_locks WHERE owner <> '' "
                               "AND holder = ANY(?::text[]) FOR UPDATE SKIP LOCKED) dead WHERE "
                               "l.session_id = dead.session_id", (dead_holders,))
        return freed

    def _notify_queue(self, cur: Any) -> None:
        # Delivered at commit, to every worker listening (``watch_queue``).
        cur.execute("SELECT pg_notify(%s, '')", (QUEUE_CHANNEL,))

    def watch_queue(self, wake: Callable[[], None]) -> None:
        if self._listener is None:
            self._listener = threading.Thread(target=self._listen, args=(wake,), daemon=True,
                                              name="queue-listener")
            self._listener.start()

    def _listen(self, wake: Callable[[], None]) -> None:
        """``LISTEN`` on a connection of its own; reconnects after an error and wakes the
        worker then (a notification sent meanwhile was missed)."""
        psycopg = self._psycopg
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {QUEUE_CHANNEL}")
                    wake()
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            wake()
            except psycopg.Error as exc:
                metrics.store_error(self.kind, exc)
                log.warning("run queue: LISTEN connection lost (%s); polling until it is back",
                            _safe(exc))
                self._closed.wait(1.0)

    def _saver_setup(self) -> None:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        # LangGraph's saver wants dict rows and no prepared statements: a pool of its own.
        self.saver_pool = ConnectionPool(self.url, min_size=1, max_size=self.pool.max_size,
                                         open=True, timeout=10,
                                         check=ConnectionPool.check_connection,
                                         kwargs={"autocommit": True, "row_factory": dict_row,
                                                 "prepare_threshold": 0,
                                                 # Bookkeeping: the run's session save
                                                 # after each step flushes them.
                                                 "options": "-c synchronous_commit=off"})
        PostgresSaver(self.saver_pool).setup()

    @contextlib.contextmanager
    def langgraph_saver(self, lock: SessionLock | None) -> Iterator[Any]:
        from langgraph.checkpoint.postgres import PostgresSaver

        yield _fenced(PostgresSaver, self, lock)(self.saver_pool)

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.join(5)
        self.saver_pool.close()
        self.pool.close()


def _safe(exc: BaseException) -> str:
    """An error text without the connection string's password."""
    return str(exc).split("\n")[0]


def _sqlite_saver(store: SqliteStateStore, lock: SessionLock | None) -> Callable[..., Any]:
    """LangGraph's SQLite saver whose every write is one transaction that first checks
    the run still holds its lease (on the same connection: no gap between the check
    and the write), instead of one autocommit per row."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    class FencedSqliteSaver(SqliteSaver):
        @contextlib.contextmanager
        def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
            with self.lock, store.serial:
                self.setup()
                cur = self.conn.cursor()
                try:
                    if transaction:
                        cur.execute("BEGIN IMMEDIATE")
                        if isinstance(lock, SqlLock):
                            store._check_lease(cur, lock)
                    yield cur
                    if transaction:
                        cur.execute("COMMIT")
                except BaseException:
                    if transaction and self.conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            cur.execute("ROLLBACK")
                    raise
                finally:
                    cur.close()

    return FencedSqliteSaver


def _fenced(saver_class: type, store: SqlStateStore, lock: SessionLock | None
            ) -> Callable[..., Any]:
    """LangGraph's saver whose writes first check the run still holds its lease.

    The check and LangGraph's write are two transactions (the maintained saver owns its
    SQL), so a lease that lapses between them lets one last checkpoint through; it is
    appended, never overwriting, and the run's next session save is refused."""

    class FencedSaver(saver_class):  # type: ignore[misc, valid-type]
        def put(self, *args: Any, **kwargs: Any) -> Any:
            store.check_lease(lock)
            return super().put(*args, **kwargs)

        def put_writes(self, *args: Any, **kwargs: Any) -> Any:
            store.check_lease(lock)
            return super().put_writes(*args, **kwargs)

    FencedSaver.__name__ = f"Fenced{saver_class.__name__}"
    return FencedSaver
