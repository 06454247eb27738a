"""The Federation Storage interface: per-session JSON documents, a session lock, and
run records (one small JSON document per ``(session, request_id)`` with a TTL)."""

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agent_wrapper.core.errors import SessionBusy

# Gets the current run record (None if absent or expired) and returns the record
# to store, or None to leave the stored one as it is.
RunMutator = Callable[[dict[str, Any] | None], dict[str, Any] | None]


class SessionLock(ABC):
    """A held lock on one session; ``release`` is idempotent."""

    @abstractmethod
    def release(self) -> None: ...


class RenewedLock(SessionLock):
    """A lease kept alive by a background thread until released: subclasses say how to
    renew (``_renew``: False once the lease is lost) and how to let go (``_let_go``)."""

    def __init__(self, name: str, interval_s: float) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                         name=f"lease:{name}")
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            if not self._renew():
                return

    @abstractmethod
    def _renew(self) -> bool: ...

    @abstractmethod
    def _let_go(self) -> None: ...

    def release(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._let_go()


class StateStore(ABC):
    """Stores one JSON-serialisable document per federation session.

    Implementations raise ``StoreUnavailable`` when the backend cannot be
    reached, and never leave a half-written document behind.
    """

    kind: str = "abstract"
    # Whether the store holds a durable run queue (``enqueue``/``claim_next``/...: the
    # SQL stores); others run what a worker accepts on that worker only.
    supports_queue: bool = False

    @abstractmethod
    def load(self, session_id: str) -> dict[str, Any] | None:
        """Return the stored document, or None if the session is unknown."""

    @abstractmethod
    def save(self, session_id: str, document: dict[str, Any],
             lock: SessionLock | None = None) -> None:
        """Atomically replace the session's document. With ``lock`` (the run's session
        lock), a store that fences refuses the write once that lock is no longer held."""

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
                   ttl_ms: int) -> dict[str, Any] | None:
        """Atomically read-modify-write one run record, across threads and replicas.

        ``mutate`` gets the current record (None if absent or expired) and returns
        the record to store, which then expires ``ttl_ms`` after this write, or
        None to leave the stored record unchanged. It may raise to abort (nothing
        is written) and may be called more than once (optimistic retries), so it
        must be free of side effects. Returns the record stored afterwards.
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
