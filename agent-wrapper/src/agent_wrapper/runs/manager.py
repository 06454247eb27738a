"""Starts runs on worker threads and answers for them: wait, stream, attach, cancel.

A run request with a ``request_id`` first claims its run record (``RunRecords.begin``):

* new id (or a failed/canceled run of the same body): this request owns the run,
  takes the session lock (``409 session_busy`` if another request of the session
  runs) and starts the framework on a worker thread;
* completed run of the same body: replay the stored reply, run nothing;
* run of the same body still in progress (this or another replica): attach, i.e.
  follow its events (same replica) or poll its record until it ends, bounded by
  this request's deadline. An attached request whose run's owner died (the run
  is ``working`` but nobody holds the session lock) takes the run over and runs
  it itself, resuming the saved state.

The worker thread outlives the HTTP request (``Prefer: respond-async``, a client
that stops reading a stream): the outcome always lands in the run record.
"""

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from agent_wrapper.core.config import Settings
from agent_wrapper.core.errors import (
    DeadlineExceeded,
    RunNotFound,
    SessionBusy,
    ShuttingDown,
    StoreUnavailable,
    WrapperError,
    error_from_info,
)
from agent_wrapper.llm import LLMFactory
from agent_wrapper.runs.control import RunControl, StepHook
from agent_wrapper.runs.events import (
    EventLog,
    completed_data,
    encode,
    make_event,
    terminal_for_error,
)
from agent_wrapper.runs.executor import Outcome, RunDeps, RunJob, Runner, execute
from agent_wrapper.runs.records import ACTIVE, FINISHED, TERMINAL, Claim, RunRecords, age_s
from agent_wrapper.store.base import SessionLock, StateStore

log = logging.getLogger(__name__)

# A "submitted" record normally turns "working" within milliseconds; one older than
# this whose session lock is free belongs to a replica that died before starting.
SUBMITTED_GRACE_S = 10.0
# How often a waiting request checks whether the run's owner is still alive.
STALE_PROBE_S = 1.0
# How long shutdown waits for running runs to reach a step boundary and stop.
SHUTDOWN_WAIT_S = 15.0

Key = tuple[str, str]


@dataclass
class RunSpec:
    """One run request, as the routes hand it over."""

    framework: str
    agent: str
    span_name: str
    runner: Runner
    route: str
    body: Any  # models.RunRequest
    session_id: str
    request_id: str | None
    body_hash: str
    trace_id: str
    deadline: float | None  # time.monotonic() value

    @property
    def key(self) -> Key | None:
        return None if self.request_id is None else (self.session_id, self.request_id)


@dataclass(eq=False)
class ActiveRun:
    """A run executing on this replica."""

    key: Key | None
    job: RunJob
    events: EventLog
    thread: threading.Thread | None = None
    outcome: Outcome | None = None


@dataclass
class Started:
    """What ``RunManager.submit`` decided (see ``records.Claim``)."""

    kind: Literal["run", "replay", "attach"]
    record: dict[str, Any] | None
    active: ActiveRun | None = None


@dataclass
class RunManager:
    settings: Settings
    store: StateStore
    records: RunRecords
    llm_factory: LLMFactory
    step_hook: StepHook | None = None
    _active: dict[Key, ActiveRun] = field(default_factory=dict)
    _running: set[ActiveRun] = field(default_factory=set)
    _waiting: Counter = field(default_factory=Counter)
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    # -- registry ------------------------------------------------------------
    def local(self, session_id: str, request_id: str) -> ActiveRun | None:
        """The run of this id executing on this replica, if any."""
        with self._mutex:
            return self._active.get((session_id, request_id))

    def waiters(self, session_id: str, request_id: str) -> int:
        """Requests of this replica waiting for the run (tests use it to sequence)."""
        with self._mutex:
            return self._waiting[(session_id, request_id)]

    # -- starting --------------------------------------------------------------
    async def submit(self, spec: RunSpec, ctx: contextvars.Context) -> Started:
        """Claim the run record (if the request has an id) and start, replay or attach."""
        if spec.request_id is None:
            lock = await self._lock_session(spec.session_id)
            return Started("run", None, self._launch(spec, ctx, None, lock))
        claim = await anyio.to_thread.run_sync(lambda: self.records.begin(
            session_id=spec.session_id, request_id=spec.request_id, route=spec.route,
            framework=spec.framework, agent=spec.agent, body_hash=spec.body_hash,
            trace_id=spec.trace_id))
        if claim.action == "replay":
            return Started("replay", claim.record)
        if claim.action == "attach":
            return Started("attach", claim.record, self.local(spec.session_id, spec.request_id))
        try:
            lock = await self._lock_session(spec.session_id)
        except WrapperError as error:
            # The record tells retries what happened; they may run again.
            with contextlib.suppress(StoreUnavailable):
                await anyio.to_thread.run_sync(self.records.fail, spec.session_id,
                                               spec.request_id, claim.owner, error)
            raise
        return Started("run", claim.record, self._launch(spec, ctx, claim, lock))

    async def _lock_session(self, session_id: str) -> SessionLock:
        lock = await anyio.to_thread.run_sync(self.store.try_lock, session_id)
        if lock is None:
            raise SessionBusy(f"session {session_id!r} is already running a request")
        return lock

    def _launch(self, spec: RunSpec, ctx: contextvars.Context, claim: Claim | None,
                lock: SessionLock) -> ActiveRun:
        events = EventLog(spec.trace_id)
        owner = claim.owner if claim else None
        delay = self.settings.test_step_delay_ms
        control = RunControl(session_id=spec.session_id, request_id=spec.request_id,
                             owner=owner, records=self.records, events=events,
                             deadline=spec.deadline, step_hook=self.step_hook,
                             step_delay_s=delay / 1000 if delay else None)
        job = RunJob(framework=spec.framework, agent=spec.agent, span_name=spec.span_name,
                     runner=spec.runner,
                     body=spec.body, session_id=spec.session_id, request_id=spec.request_id,
                     owner=owner, attempt=int(claim.record.get("attempt", 1)) if claim else 1,
                     lock=lock, control=control)
        active = ActiveRun(spec.key, job, events)
        with self._mutex:
            if spec.key is not None:
                self._active[spec.key] = active
            self._running.add(active)
        # A copy per run: one Context cannot be entered by two threads.
        thread = threading.Thread(target=ctx.copy().run, args=(self._work, active),
                                  name=f"run:{spec.session_id}", daemon=True)
        active.thread = thread
        thread.start()
        return active

    def _work(self, active: ActiveRun) -> None:
        deps = RunDeps(store=self.store, records=self.records, llm_factory=self.llm_factory,
                       crash_after_step=self.settings.test_crash_after_step)
        outcome = Outcome(error=WrapperError("internal error: the run did not finish"))
        try:
            outcome = execute(active.job, deps)
        except Exception:
            log.exception("run worker failed")
        finally:
            active.outcome = outcome
            with self._mutex:
                if active.key is not None and self._active.get(active.key) is active:
                    del self._active[active.key]
                self._running.discard(active)
            if outcome.reply is not None:
                active.events.emit("completed", completed_data(outcome.reply,
                                                               outcome.llm_calls, False))
            else:
                kind, data = terminal_for_error(outcome.error or WrapperError("run failed"))
                active.events.emit(kind, data)

    # -- attaching ---------------------------------------------------------------
    async def take_over_if_stale(self, spec: RunSpec, record: dict[str, Any],
                                 ctx: contextvars.Context) -> Started | None:
        """Run it ourselves if the run's owner is gone (nobody holds the session lock)."""
        if spec.request_id is None or record.get("status") not in ACTIVE:
            return None
        if record.get("status") == "submitted" and age_s(record) < SUBMITTED_GRACE_S:
            return None
        if self.local(spec.session_id, spec.request_id) is not None:
            return None  # alive on this replica
        lock = await anyio.to_thread.run_sync(self.store.try_lock, spec.session_id)
        if lock is None:
            return None  # the owner (or another request of the session) is running
        try:
            claim = await anyio.to_thread.run_sync(
                self.records.take_over, spec.session_id, spec.request_id, record.get("owner"),
                spec.trace_id)
        except BaseException:
            lock.release()
            raise
        if claim is None:
            lock.release()
            return None
        log.warning("run %s/%s: its owner is gone, taking it over (attempt %s)",
                    spec.session_id, spec.request_id, claim.record.get("attempt"))
        return Started("run", claim.record, self._launch(spec, ctx, claim, lock))

    async def _await_record(self, spec: RunSpec, ctx: contextvars.Context
                            ) -> dict[str, Any] | Started:
        """Wait for the run of an earlier request with this id: its final record, or a
        ``Started`` run when this request took over a run whose owner died."""
        session_id, request_id = spec.session_id, str(spec.request_id)
        poll = self.settings.run_poll_ms / 1000
        next_probe = time.monotonic()  # a dead owner is found at once, then every second
        key = (session_id, request_id)
        with self._mutex:
            self._waiting[key] += 1
        try:
            while True:
                local = self.local(session_id, request_id)
                if local is not None:
                    try:
                        await asyncio.wait_for(local.events.wait_closed(), _left(spec.deadline))
                    except TimeoutError:
                        raise _waited_too_long(request_id) from None
                record = await anyio.to_thread.run_sync(self.records.get, session_id,
                                                        request_id)
                if record is None:
                    raise RunNotFound(f"the record of run {request_id!r} expired while "
                                      "this request waited for it")
                if record.get("status") in TERMINAL:
                    return record
                left = _left(spec.deadline)
                if left is not None and left <= 0:
                    raise _waited_too_long(request_id)
                if time.monotonic() >= next_probe:
                    took = await self.take_over_if_stale(spec, record, ctx)
                    if took is not None:
                        return took
                    next_probe = time.monotonic() + STALE_PROBE_S
                await asyncio.sleep(poll if left is None else max(0.0, min(poll, left)))
        finally:
            with self._mutex:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]

    # -- answering -----------------------------------------------------------------
    async def outcome(self, started: Started, spec: RunSpec,
                      ctx: contextvars.Context) -> Outcome:
        """Wait for the outcome a blocking request answers with."""
        if started.kind == "run":
            assert started.active is not None
            await started.active.events.wait_closed()
            assert started.active.outcome is not None
            return started.active.outcome
        if started.kind == "replay":
            return outcome_from_record(started.record or {})
        try:
            result = await self._await_record(spec, ctx)
        except WrapperError as error:  # this request's own wait failed (deadline)
            return Outcome(error=error)
        if isinstance(result, Started):
            return await self.outcome(result, spec, ctx)
        return outcome_from_record(result)

    async def stream(self, started: Started, spec: RunSpec,
                     ctx: contextvars.Context) -> AsyncIterator[bytes]:
        """NDJSON lines for the request (see ``runs.events``), renumbered from seq 1."""
        seq = 0

        def line(event: dict[str, Any]) -> bytes:
            nonlocal seq
            seq += 1
            return encode({**event, "seq": seq})

        def own(kind: str, data: dict[str, Any]) -> bytes:
            return line(make_event(1, kind, spec.trace_id, data))

        active = started.active
        if started.kind == "attach" and active is None and spec.request_id is not None:
            active = self.local(spec.session_id, spec.request_id)
        if active is not None:
            # Our own run, or the same replica's run we attached to: its events as they come.
            async for event in active.events.follow():
                yield line(event)
            return
        record = started.record or {}
        info = {"framework": spec.framework, "federation_session_id": spec.session_id,
                "request_id": spec.request_id, "attempt": record.get("attempt")}
        if started.kind == "replay":
            yield own("started", {**info, "replayed": True})
            yield own("completed", completed_data(record.get("result") or {}, 0, True))
            return
        yield own("started", {**info, "attached": True})
        try:
            result = await self._await_record(spec, ctx)
        except WrapperError as error:
            yield own(*terminal_for_error(error))
            return
        if isinstance(result, Started):
            assert result.active is not None
            async for event in result.active.events.follow():
                if event["type"] != "started":
                    yield line(event)
            return
        if result.get("status") in FINISHED:
            yield own("completed", completed_data(result.get("result") or {}, 0, True))
        else:
            yield own(*terminal_for_error(error_from_info(result.get("error") or {})))

    # -- cancel and shutdown ---------------------------------------------------------
    async def cancel(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        """Flag the run canceled-requested (all replicas see it); None if unknown."""
        record = await anyio.to_thread.run_sync(self.records.request_cancel, session_id,
                                                request_id)
        local = self.local(session_id, request_id)
        if record is not None and record.get("status") in ACTIVE and local is not None:
            local.job.control.cancel()
        return record

    def shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Stop every run at its next step boundary and wait (bounded) for them."""
        with self._mutex:
            running = list(self._running)
        for active in running:
            active.job.control.request_stop(ShuttingDown(
                "the wrapper is shutting down; the run stopped, its saved state is kept, "
                "retry the request"))
        deadline = time.monotonic() + wait_s
        for active in running:
            if active.thread is not None:
                active.thread.join(max(0.0, deadline - time.monotonic()))
        if any(a.thread is not None and a.thread.is_alive() for a in running):
            log.warning("shutdown: some runs did not reach a step boundary in %.0f s", wait_s)


def outcome_from_record(record: dict[str, Any]) -> Outcome:
    """What a request that ran nothing itself answers with (replayed / attached)."""
    if record.get("status") in FINISHED:
        return Outcome(reply=record.get("result") or {}, llm_calls=0, replayed=True)
    return Outcome(error=error_from_info(record.get("error") or {}), replayed=True)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _waited_too_long(request_id: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the caller's deadline (x-federation-deadline-ms) passed while waiting for run "
        f"{request_id!r}, started by an earlier request with the same id; it keeps running, "
        "ask GET /v1/sessions/{session}/runs/{request_id} for its outcome")
