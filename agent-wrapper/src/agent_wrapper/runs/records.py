"""Run records: what happened to the request ``(federation_session_id, request_id)``.

One small JSON document per run in the state store (file or Redis, so every
replica sees it), expiring ``AGENT_WRAPPER_RUN_RECORD_TTL_S`` after its last
update::

    {"version": 1, "federation_session_id": str, "request_id": str,
     "route": "/v1/run_crew" | "/v1/run_graph", "framework": "crewai" | "langgraph",
     "body_sha256": sha256 of the canonical body (route, goal, context, input_data, metadata),
     "status": "submitted" | "working" | "completed" | "input_required" | "failed"
               | "canceled",
     "agent": str (the agent that runs it),
     "attempt": int, "owner": token of the attempt that runs it,
     "cancel_requested": bool, "trace_id": str,
     "progress": {"current_step": str | null, "steps": [str], "llm_calls": int},
     "result": reply | null, "error": {"status", "code", "message"} | null,
     "events": [event, ...] (the current attempt's progress events, see runs/events.py;
                at most MAX_LOGGED_EVENTS before the terminal one, which is always kept),
     "created_at": iso8601, "updated_at": iso8601}

Every transition is an atomic read-modify-write (``StateStore.update_run``), and
the updates of a running attempt only apply while it still owns the record, so
a cancel request or a takeover is never overwritten by a stale writer. The run's
outcome write finds a cancel requested before it and records ``canceled`` instead.

What a caller is answered on is written durably: the outcome (``complete``/``fail``),
a cancel request, a run handed back to the queue, and the record of a run accepted
before it ends (202, streams). The rest (a blocking run's start, ``working``, progress,
the event log, claims) is bookkeeping that the run's next durable write carries to
disk (``store/base.py``).
"""

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from agent_wrapper.core.errors import RequestIdReused, RunCanceled, WrapperError, error_info
from agent_wrapper.runs.events import TERMINAL_EVENTS
from agent_wrapper.store.base import StateStore

RECORD_VERSION = 1
# Events of one attempt kept in its record for rejoining watchers (the terminal event is
# kept beyond it): the record is rewritten per event, so this bounds its size and cost.
MAX_LOGGED_EVENTS = 1000
ACTIVE = frozenset({"submitted", "working"})
# "input_required": the run ended waiting for the caller's answer (a LangGraph
# interrupt); like "completed" it holds the reply and is replayed, never re-run.
FINISHED = frozenset({"completed", "input_required"})
TERMINAL = FINISHED | {"failed", "canceled"}
# Fields a client may see (the owner token stays internal).
PUBLIC_FIELDS = ("federation_session_id", "request_id", "route", "framework", "agent", "status",
                 "attempt", "cancel_requested", "trace_id", "body_sha256", "progress",
                 "created_at", "updated_at")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def age_s(record: dict[str, Any]) -> float:
    """Seconds since the record was last updated."""
    try:
        updated = datetime.fromisoformat(record["updated_at"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return (datetime.now(UTC) - updated).total_seconds()


def body_sha256(route: str, goal: str, context: str, input_data: dict[str, Any],
                metadata: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """sha256 of the canonical request body: sorted keys, no whitespace, UTF-8.

    ``extra`` holds the optional fields a request sent (``agent``, ``resume``); absent
    ones are left out, so a request without them hashes as it always did."""
    canonical = json.dumps({"route": route, "goal": goal, "context": context,
                            "input_data": input_data, "metadata": metadata, **(extra or {})},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the status and cancel routes (and 202 replies) show it."""
    view = {name: record.get(name) for name in PUBLIC_FIELDS}
    if record.get("status") in FINISHED:
        view["result"] = record.get("result")
    if record.get("status") in ("failed", "canceled"):
        view["error"] = record.get("error")
    return view


@dataclass(frozen=True)
class Claim:
    """What a request with a known id has to do.

    ``run``: this request owns the (new or retried) run, ``owner`` is its token;
    ``replay``: the run completed, answer with its stored reply;
    ``attach``: the run is in progress elsewhere, wait for its outcome.
    """

    action: Literal["run", "replay", "attach"]
    record: dict[str, Any]
    owner: str | None = None


class RunRecords:
    """Status transitions of run records over a ``StateStore``."""

    def __init__(self, store: StateStore, ttl_s: float) -> None:
        self.store = store
        self.ttl_ms = max(1, int(ttl_s * 1000))

    def get(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        return self.store.load_run(session_id, request_id)

    def _update(self, session_id: str, request_id: str,
                mutate: Callable[[dict[str, Any] | None], dict[str, Any] | None],
                durable: bool = True) -> dict[str, Any] | None:
        return self.store.update_run(session_id, request_id, mutate, self.ttl_ms,
                                     durable=durable)

    def begin(self, *, session_id: str, request_id: str, route: str, framework: str,
              agent: str, body_hash: str, trace_id: str, durable: bool = True) -> Claim:
        """Create the record, or decide how to treat an existing one.

        Same body: completed -> replay, in progress -> attach, failed/canceled ->
        a new attempt owned by this request. Different body -> ``RequestIdReused``.
        ``durable=False`` when nothing is acknowledged before the run's outcome.
        """
        owner = uuid.uuid4().hex

        def mutate(current: dict[str, Any] | None) -> dict[str, Any] | None:
            now = now_iso()
            if current is None:
                return {"version": RECORD_VERSION, "federation_session_id": session_id,
                        "request_id": request_id, "route": route, "framework": framework,
                        "agent": agent, "body_sha256": body_hash, "status": "submitted",
                        "attempt": 1,
                        "owner": owner, "cancel_requested": False, "trace_id": trace_id,
                        "progress": _new_progress(), "result": None, "error": None,
                        "events": [], "created_at": now, "updated_at": now}
            if current.get("body_sha256") != body_hash:
                raise RequestIdReused(
                    f"request_id {request_id!r} of session {session_id!r} was already used "
                    f"for a different request ({current.get('route')}, other goal, context, "
                    "input_data or metadata); use a new request_id")
            if current.get("status") in TERMINAL - FINISHED:
                # A failed or canceled run may be retried by the same request.
                return {**current, "status": "submitted",
                        "attempt": int(current.get("attempt", 1)) + 1, "owner": owner,
                        "cancel_requested": False, "trace_id": trace_id,
                        "progress": _new_progress(), "result": None, "error": None,
                        "events": [], "updated_at": now}
            return None

        record = self._update(session_id, request_id, mutate, durable)
        assert record is not None
        if record.get("owner") == owner:
            return Claim("run", record, owner)
        if record.get("status") in FINISHED:
            return Claim("replay", record)
        return Claim("attach", record)

    def take_over(self, session_id: str, request_id: str, stale_owner: str | None,
                  trace_id: str) -> Claim | None:
        """Claim a run whose owner died (caller holds the session lock), or None."""
        owner = uuid.uuid4().hex

        def mutate(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if (current is None or current.get("owner") != stale_owner
                    or current.get("status") not in ACTIVE):
                return None
            return {**current, "status": "submitted", "owner": owner, "trace_id": trace_id,
                    "attempt": int(current.get("attempt", 1)) + 1, "events": [],
                    "updated_at": now_iso()}

        record = self._update(session_id, request_id, mutate, durable=False)
        if record is not None and record.get("owner") == owner:
            return Claim("run", record, owner)
        return None

    def claim_queued(self, session_id: str, request_id: str, trace_id: str) -> Claim | None:
        """A worker takes a queued run (its record is submitted or, when the worker that
        ran it died, working: then it is a new attempt), or None when it has ended."""
        owner = uuid.uuid4().hex

        def mutate(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None or current.get("status") not in ACTIVE:
                return None
            attempt = int(current.get("attempt", 1))
            if current.get("status") == "working":
                attempt += 1
            return {**current, "status": "submitted", "owner": owner, "trace_id": trace_id,
                    "attempt": attempt, "events": [], "updated_at": now_iso()}

        record = self._update(session_id, request_id, mutate, durable=False)
        if record is not None and record.get("owner") == owner:
            return Claim("run", record, owner)
        return None

    def requeued(self, session_id: str, request_id: str, owner: str,
                 progress: dict[str, Any]) -> dict[str, Any] | None:
        """This worker stopped the run (shutdown) and handed it back to the queue."""
        return self._owned(session_id, request_id, owner,
                           lambda r: {**r, "status": "submitted", "progress": progress})

    def _owned(self, session_id: str, request_id: str, owner: str,
               change: Callable[[dict[str, Any]], dict[str, Any]],
               durable: bool = True) -> dict[str, Any] | None:
        """Apply ``change`` only while ``owner`` still owns the record; returns the record."""

        def mutate(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None or current.get("owner") != owner:
                return None
            return {**change(current), "updated_at": now_iso()}

        return self._update(session_id, request_id, mutate, durable)

    def mark_working(self, session_id: str, request_id: str, owner: str) -> dict | None:
        return self._owned(session_id, request_id, owner,
                           lambda r: {**r, "status": "working"}, durable=False)

    def note_progress(self, session_id: str, request_id: str, owner: str,
                      progress: dict[str, Any],
                      events: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """The run's progress, and the events logged since the last write (one write
        at the end of each step)."""
        return self._owned(session_id, request_id, owner,
                           lambda r: {**_with_events(r, events or []), "progress": progress},
                           durable=False)

    def complete(self, session_id: str, request_id: str, owner: str, reply: dict[str, Any],
                 progress: dict[str, Any]) -> dict[str, Any] | None:
        """The run's outcome: its reply, unless a cancel was requested before this write
        (then ``canceled``: the cancel was answered 202 and wins)."""
        status = "input_required" if reply.get("status") == "input_required" else "completed"
        return self._owned(session_id, request_id, owner, lambda r: _unless_canceled(
            r, {**r, "status": status, "result": reply, "error": None, "progress": progress},
            progress))

    def fail(self, session_id: str, request_id: str, owner: str, error: WrapperError,
             progress: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The run's failure, or ``canceled`` when a cancel was requested before it."""
        status = "canceled" if isinstance(error, RunCanceled) else "failed"
        return self._owned(session_id, request_id, owner, lambda r: _unless_canceled(
            r, {**r, "status": status, "error": error_info(error), "result": None,
                "progress": progress or r.get("progress")}, progress or r.get("progress")))

    def append_events(self, session_id: str, request_id: str, owner: str,
                      events: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Log events of the attempt ``owner`` runs (seq order is the caller's); past
        ``MAX_LOGGED_EVENTS`` only the terminal event is still kept."""

        return self._owned(session_id, request_id, owner,
                           lambda r: _with_events(r, events), durable=False)

    def request_cancel(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        """Flag an in-progress run canceled-requested; returns the record (None if unknown)."""

        def mutate(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None or current.get("status") not in ACTIVE:
                return None
            if current.get("cancel_requested"):
                return None
            return {**current, "cancel_requested": True, "updated_at": now_iso()}

        return self._update(session_id, request_id, mutate)


def _unless_canceled(current: dict[str, Any], outcome: dict[str, Any],
                     progress: dict[str, Any] | None) -> dict[str, Any]:
    """``outcome``, or ``canceled`` when the record asks for a cancel: an outcome write
    never overwrites a requested cancel (it may have come after the run's last check)."""
    if not current.get("cancel_requested") or outcome.get("status") == "canceled":
        return outcome
    session_id, request_id = current.get("federation_session_id"), current.get("request_id")
    canceled = RunCanceled(
        f"run {request_id!r} of session {session_id!r} was canceled as it ended; its "
        "outcome was not kept, the state it saved is")
    return {**current, "status": "canceled", "error": error_info(canceled), "result": None,
            "progress": progress}


def _with_events(record: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    if not events:
        return record
    logged = list(record.get("events") or [])
    for event in events:
        if len(logged) < MAX_LOGGED_EVENTS or event.get("type") in TERMINAL_EVENTS:
            logged.append(event)
    return {**record, "events": logged}


def _new_progress() -> dict[str, Any]:
    return {"current_step": None, "steps": [], "llm_calls": 0}
