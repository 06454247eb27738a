"""The durable run queue, for stores that hold one (the SQL stores): every accepted run
with a request id is a row, claimed by the worker that runs it or waiting for any worker
with a free slot; a worker that dies leaves its claim to expire and another worker takes
the run over. A store without it runs what a worker accepts on that worker only.

``RunQueue`` is a protocol: a store has a queue when it implements these members, and the
run manager asks ``isinstance(store, RunQueue)``.
"""

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

# A claimed run: (session_id, request_id, the job the worker runs it from).
QueuedRun = tuple[str, str, dict[str, Any]]


@runtime_checkable
class RunQueue(Protocol):
    """Accepted runs, durably queued, shared by every worker of the store."""

    # A worker's claim lasts this long unless renewed (``renew_claims``).
    lock_ttl_ms: int

    def enqueue(self, session_id: str, request_id: str, job: dict[str, Any], *,
                claimed: bool, max_queued: int, durable: bool = True) -> bool:
        """Add an accepted run, claimed by this worker already (it runs it now) or
        waiting. False when ``max_queued`` runs already wait (the caller answers 503).
        A waiting run is always written durably (its row is all there is of it); a
        claimed one may be bookkeeping (``durable=False``)."""
        ...

    def claim_next(self, busy_sessions: set[str]) -> QueuedRun | None:
        """Claim the oldest run that waits, or whose worker's claim expired; runs of
        ``busy_sessions`` (this worker runs them already) are skipped."""
        ...

    def renew_claims(self) -> None:
        """Extend the claims of every run this worker process holds."""
        ...

    def requeue(self, session_id: str, request_id: str) -> None:
        """Hand a claimed run back (this worker stops): another worker continues it."""
        ...

    def dequeue(self, session_id: str, request_id: str) -> None:
        """The run ended, whatever its outcome: it leaves the queue."""
        ...

    def in_queue(self, session_id: str, request_id: str) -> bool:
        """Whether the run is in the queue (claimed or waiting)."""
        ...

    def watch_queue(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another worker makes a run wait (PostgreSQL's
        ``LISTEN``); a store without notifications leaves its workers to their poll."""
        ...

    def queue_stats(self) -> tuple[int, int | None]:
        """How many runs wait, and since when the oldest waits (epoch ms; None when none
        does), for the queue metrics."""
        ...
