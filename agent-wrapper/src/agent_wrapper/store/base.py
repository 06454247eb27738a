"""The Federation Storage interface: per-session JSON documents, a session lock, and
run records (one small JSON document per ``(session, request_id)`` with a TTL).

**Durable and bookkeeping writes.** A write the caller is answered on (a step's
checkpoint, a run's outcome, an accepted 202, a cancel) is *durable*: on disk when the
call returns. Bookkeeping a later durable write makes durable anyway, or whose loss
costs nothing (a run record's progress and event log between steps, a lease, a queue
row being settled), is written with ``durable=False``: it survives a killed process at
once, and a power cut from the run's next durable write on. SQL stores order every
write in one log (SQLite's WAL, PostgreSQL's WAL), so a durable commit carries every
earlier bookkeeping write with it; one fsync per step instead of one per write.
"""

import heapq
import itertools
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agent_wrapper.core.errors import SessionBusy
from agent_wrapper.core.per_process import PerProcess

# Gets the current run record (None if absent or expired) and returns the record
# to store, or None to leave the stored one as it is.
RunMutator = Callable[[dict[str, Any] | None], dict[str, Any] | None]

log = logging.getLogger(__name__)


class SessionLock(ABC):
    """A held lock on one session; ``release`` is idempotent."""

    @abstractmethod
    def release(self) -> None: ...


class RenewedLock(SessionLock):
    """A lease kept alive until released: subclasses say how to renew (``_renew``: False
    once the lease is lost) and how to let go (``_let_go``). One thread per process
    renews every held lease (``_LeaseRenewer``), not one thread per run."""

    def __init__(self, name: str, interval_s: float) -> None:
        self.name = name
        self._interval_s = interval_s
        self._released = threading.Event()
        _renewer().add(self)

    @abstractmethod
    def _renew(self) -> bool: ...

    @abstractmethod
    def _let_go(self) -> None: ...

    def release(self) -> None:
        if self._released.is_set():
            return
        self._released.set()
        _renewer().remove(self)
        self._let_go()

    def stop_renewing(self) -> None:
        """Stop renewing without letting go: the lease runs out (a stalled holder)."""
        _renewer().remove(self)


class _LeaseRenewer:
    """Renews the held leases of this process from one thread, each every
    ``interval_s``; a lease whose renewal says it is lost is dropped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, RenewedLock]] = []  # heap of next renewals
        self._order = itertools.count()
        self._held: set[RenewedLock] = set()
        self._thread: threading.Thread | None = None

    def add(self, lease: RenewedLock) -> None:
        with self._cond:
            self._held.add(lease)
            heapq.heappush(self._due, (time.monotonic() + lease._interval_s,
                                       next(self._order), lease))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="lease-renewer")
                self._thread.start()
            self._cond.notify()

    def remove(self, lease: RenewedLock) -> None:
        with self._cond:
            self._held.discard(lease)  # its heap entry is skipped when it comes up

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, lease = heapq.heappop(self._due)
                if lease not in self._held:
                    continue
            try:
                kept = lease._renew()
            except Exception:
                log.warning("renewing lease %s failed", lease.name, exc_info=True)
                kept = True
            with self._cond:
                if not kept:
                    self._held.discard(lease)
                elif lease in self._held:
                    heapq.heappush(self._due, (time.monotonic() + lease._interval_s,
                                               next(self._order), lease))


_renewer = PerProcess(_LeaseRenewer).get


class StateStore(ABC):
    """Stores one JSON-serialisable document per federation session.

    Implementations raise ``StoreUnavailable`` when the backend cannot be
    reached, and never leave a half-written document behind.
    """

    kind: str = "abstract"
    # Whether the store holds a durable run queue (``enqueue``/``claim_next``/...: the
    # SQL stores); others run what a worker accepts on that worker only.
    supports_queue: bool = False
    # Whether a durable write also makes every earlier write of the store durable (one
    # ordered log: SQLite's and PostgreSQL's WAL).
    orders_writes: bool = False

    @abstractmethod
    def load(self, session_id: str) -> dict[str, Any] | None:
        """Return the stored document, or None if the session is unknown."""

    @abstractmethod
    def save(self, session_id: str, document: dict[str, Any],
             lock: SessionLock | None = None, *, durable: bool = True) -> None:
        """Atomically replace the session's document. With ``lock`` (the run's session
        lock), a store that fences refuses the write once that lock is no longer held.
        ``durable=False``: a durable write follows at once (the run's outcome)."""

    @abstractmethod
    def delete(self, session_id: str) -> None:
        """Forget the session (no error if it does not exist)."""

    @abstractmethod
    def try_lock(self, session_id: str) -> SessionLock | None:
        """Take the session's exclusive lock, or return None if someone holds it."""

    @abstractmethod
    def load_run(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        """Return the run record of ``(session_id, request_id)``, or None if it is
        unknown or has expired."""

    @abstractmethod
    def update_run(self, session_id: str, request_id: str, mutate: RunMutator,
                   ttl_ms: int, *, durable: bool = True) -> dict[str, Any] | None:
        """Atomically read-modify-write one run record, across threads and replicas.

        ``mutate`` gets the current record (None if absent or expired) and returns
        the record to store, which then expires ``ttl_ms`` after this write, or
        None to leave the stored record unchanged. It may raise to abort (nothing
        is written) and may be called more than once (optimistic retries), so it
        must be free of side effects. Returns the record stored afterwards.
        ``durable=False``: bookkeeping (see the module docstring).
        """

    @abstractmethod
    def claim_session(self, session_id: str, principal: str) -> str:
        """Make ``principal`` the session's owner unless it has one (atomically, across
        replicas) and return the owner. The owner is forgotten with the session."""

    @abstractmethod
    def session_owner(self, session_id: str) -> str | None:
        """The principal that owns the session, or None for an unknown session."""

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend is usable."""

    def close(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Release backend resources."""

    def expire_idle_sessions(self, idle_s: float) -> int:
        """Forget sessions untouched for ``idle_s`` seconds (their document, run records
        and graph checkpoints) and return how many; stores that expire keys by
        themselves (Redis) do nothing here."""
        return 0

    def langgraph_saver(self, lock: SessionLock | None) -> Any:
        """A context manager giving LangGraph's maintained checkpointer on this store's
        database (every checkpoint kept, fenced by ``lock``), or None: the store keeps
        graph checkpoints in the session document instead."""
        return None

    @contextmanager
    def lock(self, session_id: str) -> Iterator[SessionLock]:
        """Hold the session lock for a block; a busy session raises ``SessionBusy``."""
        handle = self.try_lock(session_id)
        if handle is None:
            raise SessionBusy(f"session {session_id!r} is already running a request")
        try:
            yield handle
        finally:
            handle.release()
