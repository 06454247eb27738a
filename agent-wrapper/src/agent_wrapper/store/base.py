"""The Federation Storage interface every backend implements (``StateStore``), split by
concern into its parts:

* ``session_documents.py``: a JSON document per session, its owner, its lock, its expiry;
* ``session_locks.py``: the session lock and the renewed leases behind it;
* ``run_record_store.py``: run records, atomic read-modify-writes with a TTL;
* ``run_queue.py``: the durable run queue, a protocol only some stores implement.

**Durable and bookkeeping writes.** A write the caller is answered on (a step's
checkpoint, a run's outcome, an accepted 202, a cancel) is *durable*: on disk when the
call returns. Bookkeeping a later durable write makes durable anyway, or whose loss
costs nothing (a run record's progress and event log between steps, a lease, a queue
row being settled), is written with ``durable=False``: it survives a killed process at
once, and a power cut from the run's next durable write on. SQL stores order every
write in one log (SQLite's WAL, PostgreSQL's WAL), so a durable commit carries every
earlier bookkeeping write with it; one fsync per step instead of one per write.
"""

from abc import abstractmethod

from agent_wrapper.store.run_record_store import RunMutator, RunRecordStore
from agent_wrapper.store.session_documents import SessionDocuments
from agent_wrapper.store.session_locks import RenewedLock, SessionLock

__all__ = ["RenewedLock", "RunMutator", "RunRecordStore", "SessionDocuments", "SessionLock",
           "StateStore"]


class StateStore(SessionDocuments, RunRecordStore):
    """A backend: session documents and run records in one place (file directory, Redis,
    SQLite, PostgreSQL). Implementations raise ``StoreUnavailable`` when the backend
    cannot be reached. A store that also implements ``run_queue.RunQueue`` holds the
    durable run queue."""

    kind: str = "abstract"
    # Whether a durable write also makes every earlier write of the store durable (one
    # ordered log: SQLite's and PostgreSQL's WAL).
    orders_writes: bool = False

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend is usable."""

    def close(self) -> None:  # an optional hook, a no-op by default
        """Release backend resources."""
