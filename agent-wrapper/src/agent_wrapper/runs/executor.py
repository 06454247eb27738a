"""The blocking part of a run, on its worker thread: session lock held, load the
session, run the crew/graph, record the finished run, build the reply.

A cancel requested before the outcome is saved ends the run ``canceled``: checked once
more when the framework returns (``RunControl.before_finish``), and by the outcome write
itself (``RunRecords.complete``/``fail``), whose verdict the caller then gets too.

The execution span (``CrewAI_Execution`` / ``LangGraph_Execution``) is opened
here, inside a copy of the request's context, so it is a child of the request's
server span and the framework's spans are its children, even when the run
outlives the request (``Prefer: respond-async``, an abandoned stream).
"""

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Status, StatusCode

from agent_wrapper import metrics, telemetry
from agent_wrapper.contract import ErrorCode
from agent_wrapper.core.errors import (
    LLMFailure,
    RunCanceled,
    RunSuperseded,
    StoreUnavailable,
    WrapperError,
)
from agent_wrapper.llm import LLMBundle, LLMFactory
from agent_wrapper.runs.control import RunControl
from agent_wrapper.runs.records import RunRecords
from agent_wrapper.session import ExecutionResult, SessionRun
from agent_wrapper.store.base import SessionLock, StateStore

log = logging.getLogger(__name__)

Runner = Callable[[Any, SessionRun, LLMFactory, LLMBundle, RunControl], ExecutionResult]
# Stops the caller asked for: not worth a warning in the log.
_EXPECTED_STOPS = frozenset({ErrorCode.CANCELED, ErrorCode.DEADLINE_EXCEEDED,
                             ErrorCode.SHUTTING_DOWN, ErrorCode.RUN_SUPERSEDED})


@dataclass
class RunJob:
    """Everything one run needs on its worker thread."""

    framework: str
    agent: str
    span_name: str
    runner: Runner
    body: Any  # models.RunRequest
    session_id: str
    request_id: str | None
    owner: str | None  # run-record owner token; None when the request has no request_id
    attempt: int
    lock: SessionLock
    control: RunControl


@dataclass
class Outcome:
    """How a run ended: the reply, or the typed error."""

    reply: dict[str, Any] | None = None
    error: WrapperError | None = None
    llm_calls: int = 0
    replayed: bool = False


@dataclass
class RunDeps:
    store: StateStore
    records: RunRecords
    llm_factory: LLMFactory
    crash_after_step: int | None = None
    history_max_runs: int = 100
    history_max_chars: int = 8_000


def _exception_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify_error(exc: BaseException, session: SessionRun | None) -> WrapperError:
    """Map whatever a framework raised to the wrapper's typed errors."""
    if isinstance(exc, WrapperError):
        return exc
    if session is not None and session.store_errors:
        return session.store_errors[-1]
    for item in _exception_chain(exc):
        if isinstance(item, WrapperError):
            return item
        module = type(item).__module__.split(".")[0]
        if module in ("openai", "httpx", "httpcore", "litellm"):
            return LLMFailure(f"LLM call failed: {type(item).__name__}: {item}")
    return WrapperError(f"internal error: {type(exc).__name__}: {exc}")


def execute(job: RunJob, deps: RunDeps) -> Outcome:
    """Run ``job`` (blocking); releases the session lock before returning."""
    timer = metrics.RunTimer(job.framework, job.agent)
    outcome: Outcome | None = None
    try:
        outcome = _execute(job, deps)
        return outcome
    finally:
        job.lock.release()
        timer.end(_status(outcome))


def _status(outcome: Outcome | None) -> str:
    """How a run ended, for the metrics: the reply's status or the error's code."""
    if outcome is None:
        return "internal"
    if outcome.reply is not None:
        return str(outcome.reply.get("status") or "completed")
    return outcome.error.code if outcome.error is not None else "internal"


def _execute(job: RunJob, deps: RunDeps) -> Outcome:
    control = job.control
    bundle = deps.llm_factory.bundle()
    control.model = bundle.model
    control.framework = job.framework
    control.provider = "openai" if bundle.provider == "openai-compatible" else bundle.provider
    control.emit("started", {"framework": job.framework, "federation_session_id": job.session_id,
                             "request_id": job.request_id, "attempt": job.attempt})
    attributes = {
        "openinference.span.kind": "CHAIN",
        "framework": job.framework,
        "federation.framework": job.framework,
        "federation.agent": job.agent,
        "federation.session_id": job.session_id,
        "federation.request_id": job.request_id or "",
        "federation.attempt": job.attempt,
        "llm.provider": bundle.provider,
        "llm.model_name": bundle.model,
        "input.value": job.body.goal,
    }
    if control.deadline is not None:
        attributes["federation.deadline_left_ms"] = int(max(0.0, control.remaining_s() or 0) * 1000)
    session: SessionRun | None = None
    with telemetry.tracer().start_as_current_span(
        job.span_name, attributes=attributes, record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            if job.owner:
                record = deps.records.mark_working(job.session_id, str(job.request_id),
                                                   job.owner)
                if record is not None and record.owner != job.owner:
                    raise RunSuperseded(f"run {job.request_id!r} was taken over by another "
                                        "attempt before it started")
            session = SessionRun.open(deps.store, job.session_id, deps.crash_after_step,
                                      lock=job.lock)
            span.set_attribute("federation.resumed", session.resumed)
            result = job.runner(job.body, session, deps.llm_factory, bundle, control)
            control.before_finish()
            if result.status == "input_required":
                # Not finished: the run waits for the caller's answer (its checkpoint
                # holds the interrupt); history records it once it completes.
                session.save()
                span.set_attribute("federation.status", "input_required")
            else:
                # With a run record, its durable outcome follows at once and carries
                # the history with it where the store orders its writes in one log.
                session.finish(job.framework, job.agent, job.request_id, job.body.goal,
                               result.output, max_runs=deps.history_max_runs,
                               max_chars=deps.history_max_chars,
                               durable=not (job.owner and deps.store.orders_writes))
            reply = _reply(job, deps, bundle, session, result)
        except Exception as exc:
            error = control.raised or classify_error(exc, session)
            if error.code not in _EXPECTED_STOPS and error.status_code >= 500:
                log.warning("%s run failed for session %s: %s", job.framework, job.session_id,
                            exc, exc_info=error.code == ErrorCode.INTERNAL)
            span.set_status(Status(StatusCode.ERROR, error.message))
            span.set_attribute("error.code", error.code)
            span.record_exception(error)
            outcome = Outcome(error=error, llm_calls=bundle.counter.value)
        else:
            span.set_attribute("output.value", result.output)
            outcome = Outcome(reply=reply, llm_calls=bundle.counter.value)
    if job.owner:
        outcome = _record(job, deps, outcome)
    return outcome


def _reply(job: RunJob, deps: RunDeps, bundle: LLMBundle, session: SessionRun,
           result: ExecutionResult) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "output": result.output,
        "framework": job.framework,
        "agent": job.agent,
        "status": result.status,
        "interrupt": result.interrupt,
        "federation_session_id": job.session_id,
        "request_id": job.request_id,
        "resumed": session.resumed,
        "trace_id": telemetry.current_trace_id(),
        "llm": bundle.describe(),
        "steps": result.steps,
        "history": session.history,
        "state": {"store": deps.store.kind, "run_count": session.document["run_count"],
                  "checkpoint": result.checkpoint},
    }
    if result.messages is not None:
        reply["messages"] = result.messages
    return reply


def _record(job: RunJob, deps: RunDeps, outcome: Outcome) -> Outcome:
    """Store the final status (still under the session lock, so waiters that see the
    lock free also see the final record) and return the outcome the caller gets: the
    stored one, ``canceled`` when the write found a cancel requested meanwhile."""
    session_id, request_id, owner = job.session_id, str(job.request_id), str(job.owner)
    progress = dataclasses.replace(job.control.progress(), current_step=None)
    record = None
    try:
        if outcome.reply is not None:
            record = deps.records.complete(session_id, request_id, owner, outcome.reply,
                                           progress)
        elif outcome.error is not None:
            record = deps.records.fail(session_id, request_id, owner, outcome.error,
                                       progress)
    except StoreUnavailable as exc:
        # The caller still gets the outcome; a retry finds the record unfinished,
        # sees its owner gone and runs it again (resuming the saved state).
        log.warning("cannot record the outcome of run %s/%s: %s", session_id, request_id,
                    exc.message)
    if (record is not None and record.owner == owner and record.status == "canceled"
            and not isinstance(outcome.error, RunCanceled)):
        message = record.error.message if record.error else "the run was canceled"
        return Outcome(error=RunCanceled(message), llm_calls=outcome.llm_calls)
    return outcome
