"""Run-record transitions (``RunRecords``): how the record of the request
``(federation_session_id, request_id)`` (``run_record.RunRecord``) changes as the run is
claimed, runs, ends, is canceled or taken over.

Every transition is an atomic read-modify-write (``RunRecordStore.update_run``), and
the updates of a running attempt only apply while it still owns the record, so
a cancel request or a takeover is never overwritten by a stale writer. The run's
outcome write finds a cancel requested before it and records ``canceled`` instead.

What a caller is answered on is written durably: the outcome (``complete``/``fail``),
a cancel request, a run handed back to the queue, and the record of a run accepted
before it ends (202, streams). The rest (a blocking run's start, ``working``, progress,
the event log, claims) is bookkeeping that the run's next durable write carries to
disk (``store/base.py``).
"""

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agent_wrapper.core.errors import RequestIdReused, RunCanceled, WrapperError
from agent_wrapper.runs.events import TERMINAL_EVENTS
from agent_wrapper.runs.run_record import (
    ACTIVE,
    FINISHED,
    PUBLIC_FIELDS,
    TERMINAL,
    RunFailure,
    RunProgress,
    RunRecord,
    body_sha256,
    now_iso,
    public_view,
)
from agent_wrapper.store.run_record_store import RunRecordStore

__all__ = ["ACTIVE", "FINISHED", "MAX_LOGGED_EVENTS", "PUBLIC_FIELDS", "TERMINAL", "Claim",
           "RunRecord", "RunRecords", "body_sha256", "public_view"]

# Events of one attempt kept in its record for rejoining watchers (the terminal event is
# kept beyond it): the record is rewritten per event, so this bounds its size and cost.
MAX_LOGGED_EVENTS = 1000

# Gets the current record (None if absent or expired), returns the record to store or
# None to leave it as it is.
RecordChange = Callable[[RunRecord | None], RunRecord | None]
Progress = RunProgress | Mapping[str, Any]


@dataclass(frozen=True)
class Claim:
    """What a request with a known id has to do.

    ``run``: this request owns the (new or retried) run, ``owner`` is its token;
    ``replay``: the run completed, answer with its stored reply;
    ``attach``: the run is in progress elsewhere, wait for its outcome.
    """

    action: Literal["run", "replay", "attach"]
    record: RunRecord
    owner: str | None = None


class RunRecords:
    """Status transitions of run records over a ``RunRecordStore``."""

    def __init__(self, store: RunRecordStore, ttl_s: float) -> None:
        self.store = store
        self.ttl_ms = max(1, int(ttl_s * 1000))

    def get(self, session_id: str, request_id: str) -> RunRecord | None:
        document = self.store.load_run(session_id, request_id)
        return None if document is None else RunRecord.from_dict(document)

    def _update(self, session_id: str, request_id: str, change: RecordChange,
                durable: bool = True) -> RunRecord | None:
        """Apply ``change`` to the stored record atomically; returns the record after."""

        def mutate(document: dict[str, Any] | None) -> dict[str, Any] | None:
            new = change(None if document is None else RunRecord.from_dict(document))
            return None if new is None else new.to_dict()

        stored = self.store.update_run(session_id, request_id, mutate, self.ttl_ms,
                                       durable=durable)
        return None if stored is None else RunRecord.from_dict(stored)

    def begin(self, *, session_id: str, request_id: str, route: str, framework: str,
              agent: str, body_hash: str, trace_id: str, durable: bool = True) -> Claim:
        """Create the record, or decide how to treat an existing one.

        Same body: completed -> replay, in progress -> attach, failed/canceled ->
        a new attempt owned by this request. Different body -> ``RequestIdReused``.
        ``durable=False`` when nothing is acknowledged before the run's outcome.
        """
        owner = uuid.uuid4().hex

        def change(current: RunRecord | None) -> RunRecord | None:
            if current is None:
                now = now_iso()
                return RunRecord(federation_session_id=session_id, request_id=request_id,
                                 route=route, framework=framework, agent=agent,
                                 body_sha256=body_hash, status="submitted", owner=owner,
                                 trace_id=trace_id, created_at=now, updated_at=now)
            if current.body_sha256 != body_hash:
                raise RequestIdReused(
                    f"request_id {request_id!r} of session {session_id!r} was already used "
                    f"for a different request ({current.route}, other goal, context, "
                    "input_data or metadata); use a new request_id")
            if current.status in TERMINAL - FINISHED:
                # A failed or canceled run may be retried by the same request.
                return current.changed(status="submitted", attempt=current.attempt + 1,
                                       owner=owner, cancel_requested=False,
                                       trace_id=trace_id, progress=RunProgress(),
                                       result=None, error=None, events=())
            return None

        record = self._update(session_id, request_id, change, durable)
        assert record is not None
        if record.owner == owner:
            return Claim("run", record, owner)
        if record.status in FINISHED:
            return Claim("replay", record)
        return Claim("attach", record)

    def take_over(self, session_id: str, request_id: str, stale_owner: str | None,
                  trace_id: str) -> Claim | None:
        """Claim a run whose owner died (caller holds the session lock), or None."""
        owner = uuid.uuid4().hex

        def change(current: RunRecord | None) -> RunRecord | None:
            if (current is None or current.owner != stale_owner
                    or current.status not in ACTIVE):
                return None
            return current.changed(status="submitted", owner=owner, trace_id=trace_id,
                                   attempt=current.attempt + 1, events=())

        return self._claimed(self._update(session_id, request_id, change, durable=False),
                             owner)

    def claim_queued(self, session_id: str, request_id: str, trace_id: str) -> Claim | None:
        """A worker takes a queued run (its record is submitted or, when the worker that
        ran it died, working: then it is a new attempt), or None when it has ended."""
        owner = uuid.uuid4().hex

        def change(current: RunRecord | None) -> RunRecord | None:
            if current is None or current.status not in ACTIVE:
                return None
            attempt = current.attempt + (1 if current.status == "working" else 0)
            return current.changed(status="submitted", owner=owner, trace_id=trace_id,
                                   attempt=attempt, events=())

        return self._claimed(self._update(session_id, request_id, change, durable=False),
                             owner)

    @staticmethod
    def _claimed(record: RunRecord | None, owner: str) -> Claim | None:
        if record is not None and record.owner == owner:
            return Claim("run", record, owner)
        return None

    def requeued(self, session_id: str, request_id: str, owner: str,
                 progress: Progress) -> RunRecord | None:
        """This worker stopped the run (shutdown) and handed it back to the queue."""
        return self._owned(session_id, request_id, owner,
                           lambda r: r.changed(status="submitted",
                                               progress=RunProgress.of(progress)))

    def _owned(self, session_id: str, request_id: str, owner: str,
               change: Callable[[RunRecord], RunRecord],
               durable: bool = True) -> RunRecord | None:
        """Apply ``change`` only while ``owner`` still owns the record; returns the record."""

        def guarded(current: RunRecord | None) -> RunRecord | None:
            if current is None or current.owner != owner:
                return None
            return change(current)

        return self._update(session_id, request_id, guarded, durable)

    def mark_working(self, session_id: str, request_id: str, owner: str) -> RunRecord | None:
        return self._owned(session_id, request_id, owner,
                           lambda r: r.changed(status="working"), durable=False)

    def note_progress(self, session_id: str, request_id: str, owner: str,
                      progress: Progress,
                      events: list[dict[str, Any]] | None = None) -> RunRecord | None:
        """The run's progress, and the events logged since the last write (one write
        at the end of each step)."""
        return self._owned(session_id, request_id, owner,
                           lambda r: r.changed(events=_with_events(r.events, events or []),
                                               progress=RunProgress.of(progress)),
                           durable=False)

    def complete(self, session_id: str, request_id: str, owner: str, reply: dict[str, Any],
                 progress: Progress) -> RunRecord | None:
        """The run's outcome: its reply, unless a cancel was requested before this write
        (then ``canceled``: the cancel was answered 202 and wins)."""
        status = "input_required" if reply.get("status") == "input_required" else "completed"
        return self._owned(session_id, request_id, owner, lambda r: _unless_canceled(
            r, r.changed(status=status, result=reply, error=None,
                         progress=RunProgress.of(progress))))

    def fail(self, session_id: str, request_id: str, owner: str, error: WrapperError,
             progress: Progress | None = None) -> RunRecord | None:
        """The run's failure, or ``canceled`` when a cancel was requested before it."""
        status = "canceled" if isinstance(error, RunCanceled) else "failed"
        return self._owned(session_id, request_id, owner, lambda r: _unless_canceled(
            r, r.changed(status=status, error=RunFailure.of(error), result=None,
                         progress=RunProgress.of(progress or r.progress))))

    def append_events(self, session_id: str, request_id: str, owner: str,
                      events: list[dict[str, Any]]) -> RunRecord | None:
        """Log events of the attempt ``owner`` runs (seq order is the caller's); past
        ``MAX_LOGGED_EVENTS`` only the terminal event is still kept."""
        return self._owned(session_id, request_id, owner,
                           lambda r: r.changed(events=_with_events(r.events, events)),
                           durable=False)

    def request_cancel(self, session_id: str, request_id: str) -> RunRecord | None:
        """Flag an in-progress run canceled-requested; returns the record (None if unknown)."""

        def change(current: RunRecord | None) -> RunRecord | None:
            if current is None or current.status not in ACTIVE or current.cancel_requested:
                return None
            return current.changed(cancel_requested=True)

        return self._update(session_id, request_id, change)


def _unless_canceled(current: RunRecord, outcome: RunRecord) -> RunRecord:
    """``outcome``, or ``canceled`` when the record asks for a cancel: an outcome write
    never overwrites a requested cancel (it may have come after the run's last check)."""
    if not current.cancel_requested or outcome.status == "canceled":
        return outcome
    canceled = RunCanceled(
        f"run {current.request_id!r} of session {current.federation_session_id!r} was "
        "canceled as it ended; its outcome was not kept, the state it saved is")
    return outcome.changed(status="canceled", error=RunFailure.of(canceled), result=None)


def _with_events(logged: tuple[dict[str, Any], ...],
                 events: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    if not events:
        return logged
    kept = list(logged)
    for event in events:
        if len(kept) < MAX_LOGGED_EVENTS or event.get("type") in TERMINAL_EVENTS:
            kept.append(event)
    return tuple(kept)
