"""Admission: what a valid run request does. A request with a ``request_id`` first
claims its run record (``RunRecords.begin``):

* new id (or a failed/canceled run of the same body): this request owns the run,
  takes the session lock (``409 session_busy`` if another request of the session
  runs) and starts the framework on a worker thread; with no free run slot, a store
  with a run queue keeps it waiting for any worker (``503 overloaded`` when the queue
  is full, or the store has none);
* completed run of the same body: replay the stored reply, run nothing;
* run of the same body still in progress (this or another replica): attach, i.e.
  wait for its outcome (``waiting.py``, ``streaming.py``). An attached request whose
  run's owner died (the run is ``working`` but nobody holds the session lock) takes
  the run over and runs it itself, resuming the saved state (``take_over_if_stale``).
"""

import contextlib
import contextvars
import functools
import logging
from dataclasses import dataclass
from typing import Literal

import anyio

from agent_wrapper.core.config import Settings
from agent_wrapper.core.errors import Overloaded, SessionBusy, StoreUnavailable, WrapperError
from agent_wrapper.runs.local_runs import ActiveRun, LocalRuns
from agent_wrapper.runs.records import ACTIVE, RunRecords
from agent_wrapper.runs.run_record import RunRecord
from agent_wrapper.runs.spec import RunSpec
from agent_wrapper.store.base import SessionLock, StateStore
from agent_wrapper.store.run_queue import RunQueue

log = logging.getLogger(__name__)

# A "submitted" record normally turns "working" within milliseconds; one older than
# this whose session lock is free belongs to a replica that died before starting.
SUBMITTED_GRACE_S = 10.0
# What a 503 overloaded suggests in Retry-After: a run slot frees within seconds.
RETRY_AFTER_S = 2


@dataclass
class Started:
    """What admission decided (see ``records.Claim``): ``run`` (``active`` runs here),
    ``replay`` (the stored ``record`` answers) or ``attach`` (wait for the run;
    ``active`` when it runs on this replica)."""

    kind: Literal["run", "replay", "attach"]
    record: RunRecord | None
    active: ActiveRun | None = None


@dataclass
class Admission:
    settings: Settings
    store: StateStore
    queue: RunQueue | None  # the store, when it holds a run queue
    records: RunRecords
    runs: LocalRuns

    async def submit(self, spec: RunSpec, ctx: contextvars.Context) -> Started:
        """Claim the run record (if the request has an id) and start, queue, replay or
        attach.

        With a run queue every accepted run with an id is a row of the queue: claimed
        by this worker when it has a free slot (and run now), else left waiting for
        whichever worker frees a slot first (the request then waits for the record, as
        for a run of another replica). A worker that dies leaves its claim to expire,
        and another worker resumes the run from its checkpoints."""
        if spec.request_id is None:
            if not self.runs.has_slot():
                raise self._overloaded(queued=False)  # runs without an id are not queued
            lock = await self._lock_session(spec.session_id)
            return Started("run", None, self.runs.launch(spec, ctx, None, lock))
        claim = await anyio.to_thread.run_sync(functools.partial(
            self.records.begin, session_id=spec.session_id, request_id=spec.request_id,
            route=spec.route, framework=spec.framework, agent=spec.agent,
            body_hash=spec.body_hash, trace_id=spec.trace_id, durable=spec.durable_start))
        if claim.action == "replay":
            return Started("replay", claim.record)
        if claim.action == "attach":
            return Started("attach", claim.record,
                           self.runs.get(spec.session_id, spec.request_id))
        try:
            lock = await self._slot_or_queue(spec)
        except WrapperError as error:
            # The record tells retries what happened; they may run again.
            with contextlib.suppress(StoreUnavailable):
                await anyio.to_thread.run_sync(self.records.fail, spec.session_id,
                                               spec.request_id, claim.owner, error)
            raise
        if lock is None:  # it waits in the queue
            return Started("attach", claim.record)
        await self._enqueue_claimed(spec, lock, durable=spec.durable_start)
        return Started("run", claim.record, self.runs.launch(spec, ctx, claim, lock))

    async def _slot_or_queue(self, spec: RunSpec) -> SessionLock | None:
        """The session lock of a run that starts now, or None once it waits in the
        queue; ``Overloaded`` when it can do neither."""
        if self.runs.has_slot():
            return await self._lock_session(spec.session_id)
        if self.queue is not None and await anyio.to_thread.run_sync(functools.partial(
                self.queue.enqueue, spec.session_id, str(spec.request_id),
                spec.queued_job().to_dict(), claimed=False,
                max_queued=self.settings.max_queued)):
            self.runs.slot_freed.set()
            return None
        raise self._overloaded(queued=self.queue is not None)

    async def _enqueue_claimed(self, spec: RunSpec, lock: SessionLock, *,
                               durable: bool) -> None:
        """Put the run this worker starts now in the queue, claimed (a store with a
        queue); the session lock is let go if that fails."""
        if self.queue is None:
            return
        try:
            await anyio.to_thread.run_sync(functools.partial(
                self.queue.enqueue, spec.session_id, str(spec.request_id),
                spec.queued_job().to_dict(), claimed=True,
                max_queued=self.settings.max_queued, durable=durable))
        except BaseException:
            lock.release()
            raise

    def _overloaded(self, *, queued: bool) -> Overloaded:
        where = (f"the queue holds {self.settings.max_queued} waiting runs" if queued
                 else "this store has no run queue")
        return Overloaded(f"all {self.settings.max_runs} run slots of this worker are busy "
                          f"and {where}; retry later", retry_after_s=RETRY_AFTER_S)

    async def _lock_session(self, session_id: str) -> SessionLock:
        lock = await anyio.to_thread.run_sync(self.store.try_lock, session_id)
        if lock is None:
            raise SessionBusy(f"session {session_id!r} is already running a request")
        return lock

    async def take_over_if_stale(self, spec: RunSpec, record: RunRecord,
                                 ctx: contextvars.Context) -> Started | None:
        """Run it ourselves if the run's owner is gone (nobody holds the session lock)."""
        if not await self._owner_may_be_gone(spec, record):
            return None
        lock = await anyio.to_thread.run_sync(self.store.try_lock, spec.session_id)
        if lock is None:
            return None  # the owner (or another request of the session) is running
        try:
            claim = await anyio.to_thread.run_sync(
                self.records.take_over, spec.session_id, spec.request_id, record.owner,
                spec.trace_id)
        except BaseException:
            lock.release()
            raise
        if claim is None:
            lock.release()
            return None
        log.warning("run %s/%s: its owner is gone, taking it over (attempt %s)",
                    spec.session_id, spec.request_id, claim.record.attempt)
        # A run that never reached the queue (its worker died before): it is now.
        await self._enqueue_claimed(spec, lock, durable=True)
        return Started("run", claim.record, self.runs.launch(spec, ctx, claim, lock))

    async def _owner_may_be_gone(self, spec: RunSpec, record: RunRecord) -> bool:
        """Whether the run is in progress with no sign of its owner: not queued (the
        queue's dispatchers take over runs whose worker died), not just submitted, and
        not running on this replica."""
        if spec.request_id is None or record.status not in ACTIVE:
            return False
        if self.queue is not None and await anyio.to_thread.run_sync(
                self.queue.in_queue, spec.session_id, spec.request_id):
            return False
        if record.status == "submitted" and record.age_s() < SUBMITTED_GRACE_S:
            return False
        return self.runs.get(spec.session_id, spec.request_id) is None
