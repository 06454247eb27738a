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
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from opentelemetry import context as otel_context
from opentelemetry import propagate

from agent_wrapper import telemetry
from agent_wrapper.core.config import Settings
from agent_wrapper.core.errors import (
    DeadlineExceeded,
    Overloaded,
    RunCanceled,
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
# What a 503 overloaded suggests in Retry-After: a run slot frees within seconds.
RETRY_AFTER_S = 2

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
    # W3C trace headers of the accepting request: a worker that takes the run from the
    # queue continues that trace.
    carrier: dict[str, str] = field(default_factory=dict)
    # False when nothing is acknowledged before the run's outcome (a blocking request):
    # its start is bookkeeping, not a durable write (``store/base.py``).
    durable_start: bool = True

    @property
    def key(self) -> Key | None:
        return None if self.request_id is None else (self.session_id, self.request_id)

    def job(self) -> dict[str, Any]:
        """What the durable queue keeps to run this request on any worker."""
        body = self.body.model_dump(mode="json", exclude_unset=True)
        body.update(federation_session_id=self.session_id, request_id=self.request_id)
        deadline_ms = None
        if self.deadline is not None:
            deadline_ms = int((time.time() + self.deadline - time.monotonic()) * 1000)
        return {"framework": self.framework, "agent": self.agent, "route": self.route,
                "body": body, "body_hash": self.body_hash, "carrier": self.carrier,
                "deadline_epoch_ms": deadline_ms}

    @classmethod
    def from_job(cls, job: dict[str, Any], agents: Any, trace_id: str) -> "RunSpec":
        """The spec of a queued run, on the worker that took it."""
        from agent_wrapper.frameworks import FRAMEWORKS
        from agent_wrapper.models import RunRequest

        body = RunRequest.model_validate(job["body"])
        framework = FRAMEWORKS[job["framework"]]
        agent = agents.resolve(job["framework"], job["agent"])
        deadline = None
        if job.get("deadline_epoch_ms") is not None:
            deadline = time.monotonic() + job["deadline_epoch_ms"] / 1000 - time.time()
        return cls(framework=job["framework"], agent=agent.name,
                   span_name=framework.SPAN_NAME,
                   runner=functools.partial(framework.run, agent), route=job["route"],
                   body=body, session_id=str(body.federation_session_id),
                   request_id=body.request_id, body_hash=job["body_hash"],
                   trace_id=trace_id, deadline=deadline, carrier=dict(job.get("carrier") or {}))


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
    agents: Any = None  # agents.AgentRegistry: resolves the agent of a queued run
    _active: dict[Key, ActiveRun] = field(default_factory=dict)
    _running: set[ActiveRun] = field(default_factory=set)
    _waiting: Counter = field(default_factory=Counter)
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _dispatcher: threading.Thread | None = None
    _sweeper: threading.Thread | None = None
    # Set when a run slot frees up: the dispatcher looks for queued work at once.
    _slot_freed: threading.Event = field(default_factory=threading.Event)

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
    def has_slot(self) -> bool:
        with self._mutex:
            return len(self._running) < self.settings.max_runs

    def _overloaded(self, queued: bool) -> Overloaded:
        where = (f"the queue holds {self.settings.max_queued} waiting runs" if queued
                 else "this store has no run queue")
        return Overloaded(f"all {self.settings.max_runs} run slots of this worker are busy "
                          f"and {where}; retry later", retry_after_s=RETRY_AFTER_S)

    async def submit(self, spec: RunSpec, ctx: contextvars.Context) -> Started:
        """Claim the run record (if the request has an id) and start, queue, replay or
        attach.

        With a SQL store every accepted run with an id is a row of the durable queue:
        claimed by this worker when it has a free slot (and run now), else left waiting
        for whichever worker frees a slot first (the request then waits for the record,
        as for a run of another replica). A worker that dies leaves its claim to expire,
        and another worker resumes the run from its checkpoints."""
        if spec.request_id is None:
            if not self.has_slot():
                raise self._overloaded(False)
            lock = await self._lock_session(spec.session_id)
            return Started("run", None, self._launch(spec, ctx, None, lock))
        claim = await anyio.to_thread.run_sync(lambda: self.records.begin(
            session_id=spec.session_id, request_id=spec.request_id, route=spec.route,
            framework=spec.framework, agent=spec.agent, body_hash=spec.body_hash,
            trace_id=spec.trace_id, durable=spec.durable_start))
        if claim.action == "replay":
            return Started("replay", claim.record)
        if claim.action == "attach":
            return Started("attach", claim.record, self.local(spec.session_id, spec.request_id))
        queue = self.store.supports_queue
        try:
            if not self.has_slot():
                if queue and await anyio.to_thread.run_sync(functools.partial(
                        self.store.enqueue, spec.session_id, spec.request_id, spec.job(),
                        claimed=False, max_queued=self.settings.max_queued)):
                    self._slot_freed.set()
                    return Started("attach", claim.record)
                raise self._overloaded(queue)
            lock = await self._lock_session(spec.session_id)
        except WrapperError as error:
            # The record tells retries what happened; they may run again.
            with contextlib.suppress(StoreUnavailable):
                await anyio.to_thread.run_sync(self.records.fail, spec.session_id,
                                               spec.request_id, claim.owner, error)
            raise
        if queue:
            try:
                await anyio.to_thread.run_sync(functools.partial(
                    self.store.enqueue, spec.session_id, spec.request_id, spec.job(),
                    claimed=True, max_queued=self.settings.max_queued,
                    durable=spec.durable_start))
            except BaseException:
                lock.release()
                raise
        return Started("run", claim.record, self._launch(spec, ctx, claim, lock))

    async def _lock_session(self, session_id: str) -> SessionLock:
        lock = await anyio.to_thread.run_sync(self.store.try_lock, session_id)
        if lock is None:
            raise SessionBusy(f"session {session_id!r} is already running a request")
        return lock

    def _launch(self, spec: RunSpec, ctx: contextvars.Context, claim: Claim | None,
                lock: SessionLock) -> ActiveRun:
        owner = claim.owner if claim else None
        persist = None
        if owner is not None and spec.request_id is not None:
            # Every event also lands in the run record: any replica can replay it.
            persist = functools.partial(self.records.append_events, spec.session_id,
                                        spec.request_id, owner)
        events = EventLog(spec.trace_id, persist)
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
                       crash_after_step=self.settings.test_crash_after_step,
                       history_max_runs=self.settings.history_max_runs,
                       history_max_chars=self.settings.history_max_chars)
        outcome = Outcome(error=WrapperError("internal error: the run did not finish"))
        try:
            outcome = execute(active.job, deps)
        except Exception:
            log.exception("run worker failed")
        finally:
            active.outcome = outcome
            if self.store.supports_queue and active.key is not None:
                self._leave_queue(active, outcome)
            with self._mutex:
                if active.key is not None and self._active.get(active.key) is active:
                    del self._active[active.key]
                self._running.discard(active)
            self._slot_freed.set()
            if outcome.reply is not None:
                active.events.emit("completed", completed_data(outcome.reply,
                                                               outcome.llm_calls, False))
            else:
                kind, data = terminal_for_error(outcome.error or WrapperError("run failed"))
                active.events.emit(kind, data)

    # -- the durable queue's worker loop -----------------------------------------------
    def start(self) -> None:
        """Start the background work: expiring idle sessions, and (SQL stores) taking
        queued runs: whenever this worker has a free slot it claims the oldest waiting
        run, or one whose worker's lease passed."""
        if self.settings.session_idle_ttl_s > 0 and self._sweeper is None:
            self._sweeper = threading.Thread(target=self._expire_loop, daemon=True,
                                             name="session-expiry")
            self._sweeper.start()
        if not self.store.supports_queue or self._dispatcher is not None:
            return
        self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True,
                                            name="run-queue")
        self._dispatcher.start()
        # A run another worker makes wait wakes this one at once (PostgreSQL NOTIFY).
        self.store.watch_queue(self._slot_freed.set)

    def _expire_loop(self) -> None:
        idle = self.settings.session_idle_ttl_s
        # A tenth of the idle time, between 1 s and 10 min: an idle session lives at most
        # ~10% longer than configured, and a quiet wrapper scans rarely.
        interval = min(max(idle / 10, 1.0), 600.0)
        while not self._stop.wait(interval):
            try:
                if expired := self.store.expire_idle_sessions(idle):
                    log.info("expired %d sessions idle for over %.0f s", expired, idle)
            except Exception:
                log.warning("session expiry failed", exc_info=True)

    def _dispatch_loop(self) -> None:
        poll = self.settings.run_poll_ms / 1000
        renew_every = self.store.lock_ttl_ms / 3000
        next_renewal = time.monotonic()
        while not self._stop.is_set():
            self._slot_freed.wait(poll)
            self._slot_freed.clear()
            try:
                if time.monotonic() >= next_renewal:
                    self.store.renew_claims()
                    next_renewal = time.monotonic() + renew_every
                while not self._stop.is_set() and self.has_slot() and self._take_queued():
                    pass
            except Exception:
                log.warning("run queue: polling failed", exc_info=True)

    def _take_queued(self) -> bool:
        """Claim and start one queued run; False when none is ready."""
        with self._mutex:
            busy = {a.job.session_id for a in self._running}
        item = self.store.claim_next(busy)
        if item is None:
            return False
        session_id, request_id, job = item
        lock = self.store.try_lock(session_id)
        if lock is None:  # another request of the session runs: later
            self.store.requeue(session_id, request_id)
            return True
        try:
            spec = RunSpec.from_job(job, self.agents, trace_id="")
            ctx = _carrier_context(spec.carrier)
            spec.trace_id = ctx.run(telemetry.current_trace_id)
            claim = self.records.claim_queued(session_id, request_id, spec.trace_id)
            if claim is None:  # it ended meanwhile (canceled, or run by a waiting request)
                self.store.dequeue(session_id, request_id)
                lock.release()
                return True
            if claim.record.get("cancel_requested"):
                self.records.fail(session_id, request_id, str(claim.owner), RunCanceled(
                    f"run {request_id!r} of session {session_id!r} was canceled before "
                    "it started"))
                self.store.dequeue(session_id, request_id)
                lock.release()
                return True
        except Exception:
            lock.release()
            self.store.requeue(session_id, request_id)
            raise
        log.info("run queue: took run %s/%s (attempt %s)", session_id, request_id,
                 claim.record.get("attempt"))
        self._launch(spec, ctx, claim, lock)
        return True

    def _leave_queue(self, active: ActiveRun, outcome: Outcome) -> None:
        """A run ended on this worker: it leaves the queue, unless this worker only
        stopped it (shutdown): then it goes back for another worker to continue."""
        assert active.key is not None
        session_id, request_id = active.key
        try:
            if isinstance(outcome.error, ShuttingDown) and active.job.owner:
                self.records.requeued(session_id, request_id, active.job.owner,
                                      active.job.control.progress())
                self.store.requeue(session_id, request_id)
            else:
                self.store.dequeue(session_id, request_id)
        except StoreUnavailable as exc:
            # Its claim expires and another worker finds the record's outcome (or runs
            # the unfinished steps again): nothing is lost.
            log.warning("run queue: cannot settle run %s/%s: %s", session_id, request_id,
                        exc.message)

    # -- attaching ---------------------------------------------------------------
    async def take_over_if_stale(self, spec: RunSpec, record: dict[str, Any],
                                 ctx: contextvars.Context) -> Started | None:
        """Run it ourselves if the run's owner is gone (nobody holds the session lock)."""
        if spec.request_id is None or record.get("status") not in ACTIVE:
            return None
        if self.store.supports_queue and await anyio.to_thread.run_sync(
                self.store.in_queue, spec.session_id, spec.request_id):
            return None  # the queue's dispatchers take over runs whose worker died
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
        if self.store.supports_queue:
            # A run that never reached the queue (its worker died before): it is now.
            await anyio.to_thread.run_sync(functools.partial(
                self.store.enqueue, spec.session_id, spec.request_id, spec.job(),
                claimed=True, max_queued=self.settings.max_queued))
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
        """Stop every run at its next step boundary and wait (bounded) for them. Queued
        runs stopped this way go back to the queue for another worker."""
        self._stop.set()
        self._slot_freed.set()
        for thread in (self._dispatcher, self._sweeper):
            if thread is not None:
                thread.join(5)
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


def _carrier_context(carrier: dict[str, str]) -> contextvars.Context:
    """A fresh context whose current trace is the accepting request's."""
    ctx = contextvars.Context()

    def attach() -> None:
        otel_context.attach(propagate.extract(carrier))

    ctx.run(attach)
    return ctx


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
