"""The run routes' one entry point (``RunManager``), composed of the parts that each do
one job:

* ``admission.py``: what a request does (run now, queue, replay, attach; take over a run
  whose owner died);
* ``local_runs.py``: the runs executing on this replica, each on its worker thread;
* ``waiting.py``: the outcome a blocking request answers with;
* ``streaming.py``: the NDJSON events a streaming request answers with;
* ``queue_dispatcher.py``: the durable queue's worker loop (stores with a run queue);
* ``session_expiry.py``: forgetting idle sessions.

Cancel and shutdown are here: they reach every part.
"""

import contextvars
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from agent_wrapper.core.config import Settings
from agent_wrapper.core.errors import ShuttingDown
from agent_wrapper.llm import LLMFactory
from agent_wrapper.runs import streaming
from agent_wrapper.runs.admission import Admission, Started
from agent_wrapper.runs.control import StepHook
from agent_wrapper.runs.executor import Outcome
from agent_wrapper.runs.local_runs import ActiveRun, LocalRuns, stop_all
from agent_wrapper.runs.queue_dispatcher import QueueDispatcher
from agent_wrapper.runs.records import ACTIVE, RunRecords
from agent_wrapper.runs.run_record import RunRecord
from agent_wrapper.runs.session_expiry import SessionExpiry
from agent_wrapper.runs.spec import RunSpec
from agent_wrapper.runs.waiting import Waiting
from agent_wrapper.store.base import StateStore
from agent_wrapper.store.run_queue import RunQueue

log = logging.getLogger(__name__)

# How long shutdown waits for running runs to reach a step boundary and stop.
SHUTDOWN_WAIT_S = 15.0


@dataclass
class RunManager:
    settings: Settings
    store: StateStore
    records: RunRecords
    llm_factory: LLMFactory
    step_hook: StepHook | None = None
    agents: Any = None  # agents.AgentRegistry: resolves the agent of a queued run
    runs: LocalRuns = field(init=False)
    admission: Admission = field(init=False)
    waiting: Waiting = field(init=False)
    dispatcher: QueueDispatcher | None = field(init=False)
    expiry: SessionExpiry = field(init=False)

    def __post_init__(self) -> None:
        queue = self.store if isinstance(self.store, RunQueue) else None
        self.runs = LocalRuns(settings=self.settings, store=self.store, records=self.records,
                              llm_factory=self.llm_factory, step_hook=self.step_hook)
        self.admission = Admission(settings=self.settings, store=self.store, queue=queue,
                                   records=self.records, runs=self.runs)
        self.waiting = Waiting(settings=self.settings, records=self.records, runs=self.runs,
                               admission=self.admission)
        self.dispatcher = None
        if queue is not None:
            self.dispatcher = QueueDispatcher(settings=self.settings, queue=queue,
                                              store=self.store, records=self.records,
                                              runs=self.runs, agents=self.agents)
            self.runs.on_end = self.dispatcher.settle
        self.expiry = SessionExpiry(self.store, self.settings.session_idle_ttl_s)

    # -- what the routes ask -------------------------------------------------------------
    def local(self, session_id: str, request_id: str) -> ActiveRun | None:
        """The run of this id executing on this replica, if any."""
        return self.runs.get(session_id, request_id)

    def waiters(self, session_id: str, request_id: str) -> int:
        """Requests of this replica waiting for the run (tests use it to sequence)."""
        return self.runs.waiters((session_id, request_id))

    def has_slot(self) -> bool:
        return self.runs.has_slot()

    async def submit(self, spec: RunSpec, ctx: contextvars.Context) -> Started:
        return await self.admission.submit(spec, ctx)

    async def take_over_if_stale(self, spec: RunSpec, record: RunRecord,
                                 ctx: contextvars.Context) -> Started | None:
        return await self.admission.take_over_if_stale(spec, record, ctx)

    async def outcome(self, started: Started, spec: RunSpec,
                      ctx: contextvars.Context) -> Outcome:
        return await self.waiting.outcome(started, spec, ctx)

    def stream(self, started: Started, spec: RunSpec,
               ctx: contextvars.Context) -> AsyncIterator[bytes]:
        return streaming.stream(started, spec, ctx, self.runs, self.waiting)

    async def cancel(self, session_id: str, request_id: str) -> RunRecord | None:
        """Flag the run canceled-requested (all replicas see it); None if unknown."""
        record = await anyio.to_thread.run_sync(self.records.request_cancel, session_id,
                                                request_id)
        local = self.runs.get(session_id, request_id)
        if record is not None and record.status in ACTIVE and local is not None:
            local.job.control.cancel()
        return record

    # -- background work and shutdown ----------------------------------------------------
    def start(self) -> None:
        """Start the background work: expiring idle sessions, and (stores with a run
        queue) taking queued runs."""
        self.expiry.start()
        if self.dispatcher is not None:
            self.dispatcher.start()

    def shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Stop every run at its next step boundary and wait (bounded) for them. Queued
        runs stopped this way go back to the queue for another worker."""
        self.expiry.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        stopped = stop_all(self.runs.running(), ShuttingDown(
            "the wrapper is shutting down; the run stopped, its saved state is kept, "
            "retry the request"), wait_s)
        if not stopped:
            log.warning("shutdown: some runs did not reach a step boundary in %.0f s", wait_s)
