"""Routes: ``/v1/run_crew``, ``/v1/run_graph``, ``/healthz``, ``/readyz``.

A run takes the session lock first; a second request for a session that is
running is rejected with 409 ``session_busy`` (not queued), so callers decide
whether to retry. The blocking framework work runs in a worker thread with a
copy of the request's context, so its spans stay in the request's own trace.
"""

import contextvars
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from opentelemetry.trace import Status, StatusCode

from agent_wrapper import telemetry
from agent_wrapper.api.schemas import ErrorResponse, RunRequest, RunResponse
from agent_wrapper.core.errors import (
    LLMFailure,
    StoreUnavailable,
    WrapperError,
    error_body,
)
from agent_wrapper.session import ExecutionResult, SessionRun

log = logging.getLogger(__name__)
router = APIRouter()

_ERRORS = {code: {"model": ErrorResponse} for code in (409, 413, 422, 500, 502, 503)}


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


def _execute(framework: str, runner: Callable[..., ExecutionResult], body: RunRequest,
             session_id: str, request: Request, span: Any) -> dict[str, Any]:
    """Lock, load, run, record: the blocking part of a run (worker thread)."""
    state = request.app.state.wrapper
    bundle = state.llm_factory.bundle()
    session: SessionRun | None = None
    try:
        with state.store.lock(session_id):
            session = SessionRun.open(state.store, session_id,
                                      state.settings.test_crash_after_step)
            span.set_attribute("federation.resumed", session.resumed)
            result = runner(body, session, state.llm_factory, bundle)
            session.finish(framework, body.request_id, body.goal, result.output)
    except Exception as exc:
        error = classify_error(exc, session)
        if error.status_code >= 500:
            log.warning("%s run failed for session %s: %s", framework, session_id, exc,
                        exc_info=error.code == "internal")
        raise error from exc
    reply: dict[str, Any] = {
        "output": result.output,
        "framework": framework,
        "federation_session_id": session_id,
        "request_id": body.request_id,
        "resumed": session.resumed,
        "trace_id": telemetry.current_trace_id(),
        "llm": bundle.describe(),
        "steps": result.steps,
        "history": session.history,
        "state": {"store": state.store.kind, "run_count": session.document["run_count"],
                  "checkpoint": result.checkpoint},
    }
    if result.messages is not None:
        reply["messages"] = result.messages
    return {"reply": reply, "llm_calls": bundle.counter.value}


async def _run(framework: str, span_name: str, runner: Callable[..., ExecutionResult],
               body: RunRequest, request: Request) -> JSONResponse:
    state = request.app.state.wrapper
    session_id = body.federation_session_id or str(uuid.uuid4())
    llm = state.llm_factory.bundle()
    attributes = {
        "openinference.span.kind": "CHAIN",
        "framework": framework,
        "federation.framework": framework,
        "federation.session_id": session_id,
        "federation.request_id": body.request_id or "",
        "llm.provider": llm.provider,
        "llm.model_name": llm.model,
        "input.value": body.goal,
    }
    with telemetry.tracer().start_as_current_span(
        span_name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        # Copy the context now, with the execution span current, and run the
        # framework inside it: its spans become children of this span.
        ctx = contextvars.copy_context()
        work = functools.partial(ctx.run, _execute, framework, runner, body, session_id,
                                 request, span)
        try:
            outcome = await anyio.to_thread.run_sync(work)
        except WrapperError as exc:
            span.set_status(Status(StatusCode.ERROR, exc.message))
            span.set_attribute("error.code", exc.code)
            span.record_exception(exc)
            return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code)
        span.set_attribute("output.value", outcome["reply"]["output"])
    # The header lets tests (and operators) see how many model calls a run made.
    return JSONResponse(outcome["reply"],
                        headers={"x-agent-wrapper-llm-calls": str(outcome["llm_calls"])})


@router.post("/v1/run_crew", response_model=RunResponse, responses=_ERRORS,
             summary="Run the CrewAI crew (researcher -> writer) for a session")
async def run_crew(body: RunRequest, request: Request) -> JSONResponse:
    from agent_wrapper.crew_executor import run_crew as runner

    return await _run("crewai", "CrewAI_Execution", runner, body, request)


@router.post("/v1/run_graph", response_model=RunResponse, responses=_ERRORS,
             summary="Run the LangGraph graph (plan -> respond) for a session")
async def run_graph(body: RunRequest, request: Request) -> JSONResponse:
    from agent_wrapper.graph_executor import run_graph as runner

    return await _run("langgraph", "LangGraph_Execution", runner, body, request)


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: store reachable and LLM configured")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state.wrapper
    reasons = list(state.llm_factory.configured())
    try:
        await anyio.to_thread.run_sync(state.store.ping)
    except StoreUnavailable as exc:
        reasons.append(exc.message)
    if reasons:
        return JSONResponse({"status": "unavailable", "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready", "store": state.store.kind,
                         "llm": state.llm_factory.bundle().describe()})
