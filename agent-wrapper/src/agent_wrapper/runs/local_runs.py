"""The runs executing on this replica: their registry (by request id, and the run slots
they fill), starting one on its worker thread, and what happens when it ends.

The worker thread outlives the HTTP request (``Prefer: respond-async``, a client that
stops reading a stream): the outcome always lands in the run record, and the run's
event log ends with exactly one terminal event.
"""

import contextlib
import contextvars
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from agent_wrapper.core.config import Settings
from agent_wrapper.core.errors import WrapperError
from agent_wrapper.llm import LLMFactory
from agent_wrapper.runs.control import RunControl, StepHook
from agent_wrapper.runs.events import EventLog, completed_data, terminal_for_error
from agent_wrapper.runs.executor import Outcome, RunDeps, RunJob, execute
from agent_wrapper.runs.records import Claim, RunRecords
from agent_wrapper.runs.spec import Key, RunSpec
from agent_wrapper.store.base import SessionLock, StateStore

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ActiveRun:
    """A run executing on this replica."""

    key: Key | None
    job: RunJob
    events: EventLog
    thread: threading.Thread | None = None
    outcome: Outcome | None = None


@dataclass
class LocalRuns:
    settings: Settings
    store: StateStore
    records: RunRecords
    llm_factory: LLMFactory
    step_hook: StepHook | None = None
    # Called on the worker thread once a run with a request id ended, before its slot
    # frees (the queue dispatcher's ``settle``: the run leaves the queue).
    on_end: Callable[[ActiveRun, Outcome], None] | None = None
    # Set when a run slot frees up: the queue dispatcher looks for queued work at once.
    slot_freed: threading.Event = field(default_factory=threading.Event)
    _active: dict[Key, ActiveRun] = field(default_factory=dict)
    _running: set[ActiveRun] = field(default_factory=set)
    _waiting: Counter = field(default_factory=Counter)
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    # -- the registry ------------------------------------------------------------
    def get(self, session_id: str, request_id: str) -> ActiveRun | None:
        """The run of this id executing on this replica, if any."""
        with self._mutex:
            return self._active.get((session_id, request_id))

    def has_slot(self) -> bool:
        with self._mutex:
            return len(self._running) < self.settings.max_runs

    def running(self) -> list[ActiveRun]:
        with self._mutex:
            return list(self._running)

    def busy_sessions(self) -> set[str]:
        """Sessions a run of this replica holds."""
        with self._mutex:
            return {active.job.session_id for active in self._running}

    def waiters(self, key: Key) -> int:
        """Requests of this replica waiting for the run (tests use it to sequence)."""
        with self._mutex:
            return self._waiting[key]

    @contextlib.contextmanager
    def waiting_for(self, key: Key) -> Iterator[None]:
        """Count this request among the run's waiters while it waits."""
        with self._mutex:
            self._waiting[key] += 1
        try:
            yield
        finally:
            with self._mutex:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]

    # -- starting and ending -----------------------------------------------------------
    def launch(self, spec: RunSpec, ctx: contextvars.Context, claim: Claim | None,
               lock: SessionLock) -> ActiveRun:
        """Start the run on a worker thread (it holds ``lock``, released when it ends)."""
        owner = claim.owner if claim else None
        persist = None
        if owner is not None and spec.request_id is not None:
            # Every event also lands in the run record: any replica can replay it.
            persist = functools.partial(self.records.append_events, spec.session_id,
                                        spec.request_id, owner)
        events = EventLog(spec.trace_id, persist)
        active = ActiveRun(spec.key, self._job(spec, claim, lock, events), events)
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

    def _job(self, spec: RunSpec, claim: Claim | None, lock: SessionLock,
             events: EventLog) -> RunJob:
        owner = claim.owner if claim else None
        delay = self.settings.test_step_delay_ms
        control = RunControl(session_id=spec.session_id, request_id=spec.request_id,
                             owner=owner, records=self.records, events=events,
                             deadline=spec.deadline, step_hook=self.step_hook,
                             step_delay_s=delay / 1000 if delay else None)
        return RunJob(framework=spec.framework, agent=spec.agent, span_name=spec.span_name,
                      runner=spec.runner, body=spec.body, session_id=spec.session_id,
                      request_id=spec.request_id, owner=owner,
                      attempt=claim.record.attempt if claim else 1, lock=lock,
                      control=control)

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
            self._ended(active, outcome)

    def _ended(self, active: ActiveRun, outcome: Outcome) -> None:
        """The run ended: settle it, free its slot, then close its event log."""
        active.outcome = outcome
        if self.on_end is not None and active.key is not None:
            self.on_end(active, outcome)
        with self._mutex:
            if active.key is not None and self._active.get(active.key) is active:
                del self._active[active.key]
            self._running.discard(active)
        self.slot_freed.set()
        if outcome.reply is not None:
            active.events.emit("completed", completed_data(outcome.reply, outcome.llm_calls,
                                                           False))
        else:
            kind, data = terminal_for_error(outcome.error or WrapperError("run failed"))
            active.events.emit(kind, data)


def stop_all(runs: list[ActiveRun], error: WrapperError, wait_s: float) -> bool:
    """Ask every run to stop at its next step boundary and wait (bounded) for them;
    False when some did not stop in time."""
    for active in runs:
        active.job.control.request_stop(error)
    deadline = time.monotonic() + wait_s
    for active in runs:
        if active.thread is not None:
            active.thread.join(max(0.0, deadline - time.monotonic()))
    return not any(a.thread is not None and a.thread.is_alive() for a in runs)
