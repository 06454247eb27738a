"""The Federation Storage interface: per-session JSON documents plus a session lock."""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agent_wrapper.core.errors import SessionBusy


class SessionLock(ABC):
    """A held lock on one session; ``release`` is idempotent."""

    @abstractmethod
    def release(self) -> None: ...


class StateStore(ABC):
    """Stores one JSON-serialisable document per federation session.

    Implementations raise ``StoreUnavailable`` when the backend cannot be
    reached, and never leave a half-written document behind.
    """

    kind: str = "abstract"

    @abstractmethod
    def load(self, session_id: str) -> dict[str, Any] | None:
        """Return the stored document, or None if the session is unknown."""

    @abstractmethod
    def save(self, session_id: str, document: dict[str, Any]) -> None:
        """Atomically replace the session's document."""

    @abstractmethod
    def delete(self, session_id: str) -> None:
        """Forget the session (no error if it does not exist)."""

    @abstractmethod
    def try_lock(self, session_id: str) -> SessionLock | None:
        """Take the session's exclusive lock, or return None if someone holds it."""

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend is usable."""

    def close(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Release backend resources."""

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
