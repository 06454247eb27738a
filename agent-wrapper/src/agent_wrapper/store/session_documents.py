"""Per-session state: one JSON document per federation session (the frameworks'
checkpoints, the run history), its owner (the principal that first used it), its
exclusive lock, and its expiry when idle."""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agent_wrapper.core.errors import SessionBusy
from agent_wrapper.store.session_locks import SessionLock


class SessionDocuments(ABC):
    """Stores one JSON-serialisable document per federation session; never leaves a
    half-written document behind."""

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
    def claim_session(self, session_id: str, principal: str) -> str:
        """Make ``principal`` the session's owner unless it has one (atomically, across
        replicas) and return the owner. The owner is forgotten with the session."""

    @abstractmethod
    def session_owner(self, session_id: str) -> str | None:
        """The principal that owns the session, or None for an unknown session."""

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
