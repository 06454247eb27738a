"""Where run records live: one small JSON document per ``(session, request_id)`` with a
TTL, changed only by atomic read-modify-writes (``runs/records.py`` gives them their
meaning and their type, ``runs/run_record.py``)."""

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

# Gets the current run record (None if absent or expired) and returns the record
# to store, or None to leave the stored one as it is.
RunMutator = Callable[[dict[str, Any] | None], dict[str, Any] | None]


class RunRecordStore(ABC):
    """Run records, seen alike by every thread and replica sharing the store."""

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
        ``durable=False``: bookkeeping (see ``store/base.py``).
        """
