"""The run queue's worker loop (stores that hold a queue, ``store/run_queue.py``):
whenever this worker has a free run slot it claims the oldest waiting run, or one whose
worker's claim expired (it died), and runs it; it renews this worker's claims; and a run
that ends here leaves the queue, or goes back to it when this worker only stopped it
(shutdown) for another worker to continue."""

import contextvars
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate

from agent_wrapper import telemetry
from agent_wrapper.core.config import Settings
from agent_wrapper.core.errors import RunCanceled, ShuttingDown, StoreUnavailable
from agent_wrapper.runs.executor import Outcome
from agent_wrapper.runs.local_runs import ActiveRun, LocalRuns
from agent_wrapper.runs.records import Claim, RunRecords
from agent_wrapper.runs.spec import QueuedJob, RunSpec
from agent_wrapper.store.base import StateStore
from agent_wrapper.store.run_queue import RunQueue

log = logging.getLogger(__name__)


@dataclass
class QueueDispatcher:
    settings: Settings
    queue: RunQueue
    store: StateStore
    records: RunRecords
    runs: LocalRuns
    agents: Any  # agents.AgentRegistry: resolves the agent of a queued run
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="run-queue")
            self._thread.start()
            # A run another worker makes wait wakes this one at once (PostgreSQL NOTIFY).
            self.queue.watch_queue(self.runs.slot_freed.set)

    def stop(self) -> None:
        """Take no more runs (waits a little for the loop to end)."""
        self._stop.set()
        self.runs.slot_freed.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        poll = self.settings.run_poll_ms / 1000
        renew_every = self.queue.lock_ttl_ms / 3000
        next_renewal = time.monotonic()
        while not self._stop.is_set():
            self.runs.slot_freed.wait(poll)
            self.runs.slot_freed.clear()
            try:
                if time.monotonic() >= next_renewal:
                    self.queue.renew_claims()
                    next_renewal = time.monotonic() + renew_every
                while not self._stop.is_set() and self.runs.has_slot() and self._take_queued():
                    pass
            except Exception:
                log.warning("run queue: polling failed", exc_info=True)

    def _take_queued(self) -> bool:
        """Claim and start one queued run; False when none is ready."""
        item = self.queue.claim_next(self.runs.busy_sessions())
        if item is None:
            return False
        session_id, request_id, job = item
        lock = self.store.try_lock(session_id)
        if lock is None:  # another request of the session runs: later
            self.queue.requeue(session_id, request_id)
            return True
        try:
            claimed = self._claim_record(session_id, request_id, QueuedJob.from_dict(job))
        except Exception:
            lock.release()
            self.queue.requeue(session_id, request_id)
            raise
        if claimed is None:
            self.queue.dequeue(session_id, request_id)
            lock.release()
            return True
        spec, ctx, claim = claimed
        log.info("run queue: took run %s/%s (attempt %s)", session_id, request_id,
                 claim.record.attempt)
        self.runs.launch(spec, ctx, claim, lock)
        return True

    def _claim_record(self, session_id: str, request_id: str, job: QueuedJob
                      ) -> tuple[RunSpec, contextvars.Context, Claim] | None:
        """The spec, trace context and record claim of a queued run this worker runs;
        None when it ended meanwhile (canceled, or run by a waiting request), or was
        canceled before it started (its record then says so)."""
        spec = RunSpec.from_queued(job, self.agents, trace_id="")
        ctx = _carrier_context(spec.carrier)
        spec.trace_id = ctx.run(telemetry.current_trace_id)
        claim = self.records.claim_queued(session_id, request_id, spec.trace_id)
        if claim is None:
            return None
        if claim.record.cancel_requested:
            self.records.fail(session_id, request_id, str(claim.owner), RunCanceled(
                f"run {request_id!r} of session {session_id!r} was canceled before "
                "it started"))
            return None
        return spec, ctx, claim

    def settle(self, active: ActiveRun, outcome: Outcome) -> None:
        """A run ended on this worker: it leaves the queue, unless this worker only
        stopped it (shutdown): then it goes back for another worker to continue."""
        assert active.key is not None
        session_id, request_id = active.key
        try:
            if isinstance(outcome.error, ShuttingDown) and active.job.owner:
                self.records.requeued(session_id, request_id, active.job.owner,
                                      active.job.control.progress())
                self.queue.requeue(session_id, request_id)
            else:
                self.queue.dequeue(session_id, request_id)
        except StoreUnavailable as exc:
            # Its claim expires and another worker finds the record's outcome (or runs
            # the unfinished steps again): nothing is lost.
            log.warning("run queue: cannot settle run %s/%s: %s", session_id, request_id,
                        exc.message)


def _carrier_context(carrier: dict[str, str]) -> contextvars.Context:
    """A fresh context whose current trace is the accepting request's."""
    ctx = contextvars.Context()

    def attach() -> None:
        otel_context.attach(propagate.extract(carrier))

    ctx.run(attach)
    return ctx
