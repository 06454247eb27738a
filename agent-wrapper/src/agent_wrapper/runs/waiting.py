"""Waiting for a run's outcome: the reply of a blocking request, whether it runs the run
itself, replays a stored outcome or attached to a run in progress (this replica's: its
event log closes; another replica's: its record is polled until it ends, bounded by the
request's deadline, taking the run over if its owner died)."""

import asyncio
import contextvars
import time
from dataclasses import dataclass

import anyio

from agent_wrapper.contract import DEADLINE_HEADER, run_record_path
from agent_wrapper.core.config import Settings
from agent_wrapper.core.errors import DeadlineExceeded, RunNotFound, WrapperError
from agent_wrapper.runs.admission import Admission, Started
from agent_wrapper.runs.executor import Outcome
from agent_wrapper.runs.local_runs import LocalRuns
from agent_wrapper.runs.records import FINISHED, TERMINAL, RunRecords
from agent_wrapper.runs.run_record import RunRecord
from agent_wrapper.runs.spec import RunSpec

# How often a waiting request checks whether the run's owner is still alive.
STALE_PROBE_S = 1.0


@dataclass
class Waiting:
    settings: Settings
    records: RunRecords
    runs: LocalRuns
    admission: Admission

    async def outcome(self, started: Started, spec: RunSpec,
                      ctx: contextvars.Context) -> Outcome:
        """Wait for the outcome a blocking request answers with."""
        if started.kind == "run":
            assert started.active is not None
            await started.active.events.wait_closed()
            assert started.active.outcome is not None
            return started.active.outcome
        if started.kind == "replay":
            assert started.record is not None
            return outcome_from_record(started.record)
        try:
            result = await self.await_record(spec, ctx)
        except WrapperError as error:  # this request's own wait failed (deadline)
            return Outcome(error=error)
        if isinstance(result, Started):
            return await self.outcome(result, spec, ctx)
        return outcome_from_record(result)

    async def await_record(self, spec: RunSpec, ctx: contextvars.Context
                           ) -> RunRecord | Started:
        """Wait for the run of an earlier request with this id: its final record, or a
        ``Started`` run when this request took over a run whose owner died."""
        session_id, request_id = spec.session_id, str(spec.request_id)
        poll = self.settings.run_poll_ms / 1000
        next_probe = time.monotonic()  # a dead owner is found at once, then every second
        with self.runs.waiting_for((session_id, request_id)):
            while True:
                record = await self._next_record(spec)
                if record.status in TERMINAL:
                    return record
                left = _left(spec.deadline)
                if left is not None and left <= 0:
                    raise _waited_too_long(spec)
                if time.monotonic() >= next_probe:
                    took = await self.admission.take_over_if_stale(spec, record, ctx)
                    if took is not None:
                        return took
                    next_probe = time.monotonic() + STALE_PROBE_S
                await asyncio.sleep(poll if left is None else max(0.0, min(poll, left)))

    async def _next_record(self, spec: RunSpec) -> RunRecord:
        """The run's record, once its run on this replica (if any) ended."""
        session_id, request_id = spec.session_id, str(spec.request_id)
        local = self.runs.get(session_id, request_id)
        if local is not None:
            try:
                await asyncio.wait_for(local.events.wait_closed(), _left(spec.deadline))
            except TimeoutError:
                raise _waited_too_long(spec) from None
        record = await anyio.to_thread.run_sync(self.records.get, session_id, request_id)
        if record is None:
            raise RunNotFound(f"the record of run {request_id!r} expired while this "
                              "request waited for it")
        return record


def outcome_from_record(record: RunRecord) -> Outcome:
    """What a request that ran nothing itself answers with (replayed / attached)."""
    if record.status in FINISHED:
        return Outcome(reply=record.result or {}, llm_calls=0, replayed=True)
    return Outcome(error=record.failure(), replayed=True)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _waited_too_long(spec: RunSpec) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the caller's deadline ({DEADLINE_HEADER}) passed while waiting for run "
        f"{spec.request_id!r}, started by an earlier request with the same id; it keeps "
        f"running, ask GET {run_record_path(spec.session_id, str(spec.request_id))} for "
        "its outcome")
