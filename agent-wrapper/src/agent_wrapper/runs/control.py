"""Step boundaries of a running crew/graph: progress events, cancel and deadline checks.

The executors call ``RunControl`` at every step boundary:

* ``step_started`` before a step runs (CrewAI: before each task, via crewai's
  ``PRE_STEP`` interception hook; LangGraph: at the start of each node),
* ``before_llm_call`` before each LLM call (CrewAI ``PRE_MODEL_CALL`` hook, i.e.
  before every agent step),
* ``step_finished`` after a step's checkpoint is stored (CrewAI task callback;
  LangGraph: between nodes),
* ``before_finish`` once the framework returned, before the run's outcome is saved
  (a cancel only: the work is done, a deadline or a shutdown no longer stops it).

At each boundary the control (after the TEST-ONLY hook / delay) raises
``DeadlineExceeded`` once the caller's deadline passed, and ``RunCanceled`` once
the run record says canceled-requested (checked in the store, so a cancel sent
to any replica stops the run) or a local stop was requested. The exception ends
the framework run there: the checkpoints stored so far stay, no further LLM call
is made. A cancel that comes after the last check still wins: the outcome write
(``RunRecords.complete``/``fail``) turns into ``canceled`` when it finds the cancel
in the record, so a cancel answered 202 never ends ``completed``.

Step and LLM call durations are recorded here (``metrics.py``).
"""

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_wrapper import metrics
from agent_wrapper.contract import DEADLINE_HEADER
from agent_wrapper.core.errors import (
    DeadlineExceeded,
    RunCanceled,
    RunSuperseded,
    WrapperError,
)
from agent_wrapper.runs.events import EventLog
from agent_wrapper.runs.records import RunRecords
from agent_wrapper.runs.run_record import RunProgress, RunRecord


@dataclass(frozen=True)
class Boundary:
    """What a TEST-ONLY step hook is told about the boundary it is called at."""

    kind: str  # "step" | "llm_call" | "checkpoint"
    name: str  # step (task/node) name, or the agent for "llm_call"
    session_id: str
    request_id: str | None
    deadline_left_s: float | None


StepHook = Callable[[Boundary], None]

# A run record read (or written) this recently answers a boundary's cancel check
# instead of another read: a step's start and its first LLM call, often under a
# millisecond apart, read the record once. LLM calls take seconds, so a cancel sent to
# another replica still stops the run at its next LLM call.
RECORD_FRESH_S = 0.05


class RunControl:
    """Per-run events and stop checks; safe to call from any thread."""

    def __init__(self, *, session_id: str, request_id: str | None = None,
                 owner: str | None = None, records: RunRecords | None = None,
                 events: EventLog | None = None, deadline: float | None = None,
                 model: str = "", step_hook: StepHook | None = None,
                 step_delay_s: float | None = None) -> None:
        self.session_id = session_id
        self.request_id = request_id
        self.owner = owner
        self.records = records if owner else None
        self.events = events or EventLog("0" * 32)
        self.deadline = deadline  # time.monotonic() value, or None
        self.model = model
        self.framework = ""  # the executor names them (metrics' attributes)
        self.provider = ""
        self.step_hook = step_hook
        self.step_delay_s = step_delay_s
        self._mutex = threading.Lock()
        self._stop_requested: WrapperError | None = None
        self._cancel_requested = False
        self.raised: WrapperError | None = None  # the stop error a boundary raised
        self.llm_calls = 0
        self.steps_done: list[str] = []
        self.current_step: str | None = None
        self._record_seen: tuple[float, RunRecord | None] | None = None
        # When the current step and each agent's LLM calls started (durations).
        self._step_started_at: float | None = None
        self._llm_started_at: dict[str, list[float]] = {}

    @classmethod
    def detached(cls, session_id: str = "-") -> "RunControl":
        """A control that never stops anything (executors used outside a request)."""
        return cls(session_id=session_id)

    # -- stop requests -------------------------------------------------------
    def request_stop(self, error: WrapperError) -> None:
        """Stop at the next boundary (shutdown); the first request wins."""
        with self._mutex:
            if self._stop_requested is None:
                self._stop_requested = error

    def cancel(self) -> None:
        """Local fast path of a cancel (the store flag stops runs on other replicas)."""
        with self._mutex:
            self._cancel_requested = True

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def progress(self) -> RunProgress:
        with self._mutex:
            return RunProgress(current_step=self.current_step, steps=tuple(self.steps_done),
                               llm_calls=self.llm_calls)

    def _stop(self, error: WrapperError) -> None:
        with self._mutex:
            if self.raised is None:
                self.raised = error
            raised = self.raised
        # A copy per raise: several threads (crewai runs hooks on its own) may raise it.
        raise copy.copy(raised)

    def boundary(self, kind: str, name: str, *, record_progress: bool = False) -> None:
        """A step boundary: record progress, hook/delay (tests), then the deadline and
        cancel checks (one store round trip when there is no hook or delay)."""
        tracked = (self.records is not None and self.request_id is not None
                   and self.owner is not None)
        record: RunRecord | None = None
        if tracked and record_progress:
            record = self._note_progress()
        if self.step_hook is not None or self.step_delay_s:
            if self.step_hook is not None:
                self.step_hook(Boundary(kind, name, self.session_id, self.request_id,
                                        self.remaining_s()))
            if self.step_delay_s:
                time.sleep(self.step_delay_s)
            record = None  # re-read: a cancel may have come in meanwhile
            self._record_seen = None
        if self.raised is not None:
            self._stop(self.raised)
        with self._mutex:
            requested, canceled = self._stop_requested, self._cancel_requested
        if requested is not None:
            self._stop(requested)
        if canceled:
            self._stop(self._canceled(kind, name))
        left = self.remaining_s()
        if left is not None and left <= 0:
            self._stop(DeadlineExceeded(
                f"the caller's deadline ({DEADLINE_HEADER}) passed; the run stopped "
                f"before {kind} {name!r}, the state saved so far is kept"))
        if not tracked:
            return
        if record is None:
            record = self._fresh_record()
        if record is None:
            return  # expired record: nothing can be requested through it any more
        if record.owner != self.owner:
            self._stop(RunSuperseded(
                f"run {self.request_id!r} was taken over by another attempt"))
        if record.cancel_requested:
            self._stop(self._canceled(kind, name))

    def before_finish(self) -> None:
        """The last check, before the run's outcome is saved: a cancel requested by now
        stops the run (its checkpoints are kept; the session's history does not record
        it). Deadlines and shutdowns are not checked: there is no work left to spare."""
        tracked = (self.records is not None and self.request_id is not None
                   and self.owner is not None)
        if self.step_hook is not None:
            self.step_hook(Boundary("finish", "run", self.session_id, self.request_id,
                                    self.remaining_s()))
            self._record_seen = None  # re-read: a cancel may have come in meanwhile
        with self._mutex:
            canceled = self._cancel_requested
        if not canceled and tracked:
            record = self._fresh_record()
            if record is not None and record.owner != self.owner:
                self._stop(RunSuperseded(
                    f"run {self.request_id!r} was taken over by another attempt"))
            canceled = record is not None and record.cancel_requested
        if canceled:
            self._stop(RunCanceled(
                f"run {self.request_id!r} of session {self.session_id!r} was canceled; it "
                "stopped after its last step, before its outcome was saved; the state "
                "saved so far is kept"))

    def _note_progress(self) -> RunRecord | None:
        """Write the progress and the events not yet in the record, in one write."""
        assert self.records is not None
        records, progress = self.records, self.progress()
        session_id, request_id, owner = self.session_id, str(self.request_id), str(self.owner)
        record = self.events.flush_with(lambda batch: records.note_progress(
            session_id, request_id, owner, progress, batch))
        self._record_seen = (time.monotonic(), record)
        return record

    def _fresh_record(self) -> RunRecord | None:
        assert self.records is not None
        seen = self._record_seen
        if seen is not None and time.monotonic() - seen[0] < RECORD_FRESH_S:
            return seen[1]
        record = self.records.get(self.session_id, str(self.request_id))
        self._record_seen = (time.monotonic(), record)
        return record

    def _canceled(self, kind: str, name: str) -> RunCanceled:
        return RunCanceled(
            f"run {self.request_id!r} of session {self.session_id!r} was canceled; "
            f"it stopped before {kind} {name!r}, the state saved so far is kept")

    # -- what the executors report -------------------------------------------
    def emit(self, kind: str, data: dict[str, Any]) -> None:
        self.events.emit(kind, data)

    def step_started(self, name: str, agent: str | None) -> None:
        # The current step stays in memory (events carry it): progress becomes durable
        # with the step's checkpoint, one record write per step instead of two.
        with self._mutex:
            self.current_step = name
        self.boundary("step", name)
        self._step_started_at = time.monotonic()
        self.emit("step", {"name": name, "agent": agent, "phase": "started"})

    def step_resumed(self, name: str, agent: str | None, output: str) -> None:
        """A step taken from the checkpoint of an interrupted run (not executed)."""
        with self._mutex:
            self.steps_done.append(name)
        self.emit("step", {"name": name, "agent": agent, "phase": "resumed",
                           "output": output})

    def step_finished(self, name: str, agent: str | None, output: str,
                      checkpoint: str | None, *, last: bool = False) -> None:
        """Call once the step's checkpoint is stored. After the ``last`` step no LLM
        call is left to prevent, so a late cancel/deadline no longer stops the run."""
        with self._mutex:
            self.steps_done.append(name)
            self.current_step = None
            started, self._step_started_at = self._step_started_at, None
        if started is not None:
            metrics.record_step(self.framework, agent, name, time.monotonic() - started)
        self.emit("step", {"name": name, "agent": agent, "phase": "finished",
                           "output": output})
        self.emit("checkpoint_saved", {"step": name, "checkpoint": checkpoint})
        if not last:
            self.boundary("checkpoint", name, record_progress=True)
        elif self.records is not None and self.request_id and self.owner:
            self._note_progress()

    def before_llm_call(self, agent: str | None) -> None:
        self.boundary("llm_call", agent or "agent")
        with self._mutex:
            self._llm_started_at.setdefault(agent or "", []).append(time.monotonic())

    def llm_finished(self, agent: str | None, prompt_chars: int, completion_chars: int,
                     usage: dict[str, Any] | None = None) -> None:
        with self._mutex:
            self.llm_calls += 1
            step = self.current_step
            started = self._llm_started_at.get(agent or "")
            began = started.pop(0) if started else None
        if began is not None:
            metrics.record_llm_call(self.provider, self.model, time.monotonic() - began)
        data: dict[str, Any] = {"model": self.model, "agent": agent, "step": step,
                                "prompt_chars": prompt_chars,
                                "completion_chars": completion_chars}
        for key in ("input_tokens", "output_tokens"):
            if usage and usage.get(key) is not None:
                data[key] = usage[key]
        self.emit("llm_call", data)

    def tool_called(self, tool: str, agent: str | None, *, call_id: str | None = None,
                    tool_input: str | None = None, output: str | None = None,
                    step: str | None = None) -> None:
        """A tool call finished (``step``: the step that made it, if not the current one)."""
        with self._mutex:
            step = step or self.current_step
        self.emit("tool_call", {"tool": tool, "agent": agent, "step": step, "call_id": call_id,
                                "input": tool_input, "output": output})
