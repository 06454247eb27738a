"""Routes: ``/v1/run_crew``, ``/v1/run_graph``, ``/v1/agents``, ``/healthz``, ``/readyz``.

A run request names an agent (``agent``; empty: the route's default agent): an
unknown one is 404 ``agent_not_found``, ``input_data`` that does not fit the agent's
inputs is 422 naming the field, both before anything runs.

A run takes the session lock first; a second request for a session that is
running is rejected with 409 ``session_busy`` (not queued), so callers decide
whether to retry. The framework runs on a worker thread with a copy of the
request's context, so its spans stay in the request's own trace.

Beyond one blocking call (see ``agent_wrapper.runs``): a ``request_id`` makes the
request idempotent (replay / attach / 412), ``x-federation-deadline-ms`` bounds
it, ``Prefer: respond-async`` answers 202 at once, ``Accept:
application/x-ndjson`` streams progress events.
"""

import contextvars
import functools
import logging
import re
import time
import uuid
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from opentelemetry import propagate

from agent_wrapper import telemetry
from agent_wrapper.api.deps import Caller, Manager, Registry, Store, check_owner, wrapper_state
from agent_wrapper.contract import (
    AGENTS,
    DEADLINE_HEADER,
    HEALTHZ,
    LLM_CALLS_HEADER,
    NDJSON,
    PREFER_HEADER,
    PREFERENCE_APPLIED_HEADER,
    READYZ,
    REPLAYED_HEADER,
    REQUEST_ID_HEADER,
    RESPOND_ASYNC,
    RETRY_AFTER_HEADER,
    RUN_CREW,
    RUN_GRAPH,
    ErrorCode,
    Framework,
    error_body,
    run_record_path,
)
from agent_wrapper.core.errors import BadRequest, Overloaded, StoreUnavailable, WrapperError
from agent_wrapper.frameworks import FRAMEWORKS
from agent_wrapper.models import AgentList, ErrorResponse, RunRecordView, RunRequest, RunResponse
from agent_wrapper.runs import RunSpec, body_sha256, public_view
from agent_wrapper.runs.executor import Outcome

log = logging.getLogger(__name__)
router = APIRouter()

_DEADLINE_RE = re.compile(r"\d{1,12}")

_ERRORS = {status: {"model": ErrorResponse}
           for status in sorted({code.http_status for code in ErrorCode})}
# 503 overloaded carries Retry-After (seconds).
_RUN_RESPONSES = {
    **_ERRORS,
    200: {"content": {NDJSON: {"schema": {"type": "string"}}},
          "description": "The reply; with `Accept: application/x-ndjson` a stream of "
                         "progress events, one JSON object per line."},
    202: {"model": RunRecordView, "description": "`Prefer: respond-async`: the run record."},
}

Mode = Literal["sync", "async", "stream"]


def _deadline(request: Request) -> float | None:
    """``x-federation-deadline-ms``: milliseconds left for the whole task (400 if bad)."""
    values = request.headers.getlist(DEADLINE_HEADER)
    if not values:
        return None
    if len(values) > 1 or not _DEADLINE_RE.fullmatch(values[0].strip()):
        raise BadRequest(f"{DEADLINE_HEADER} must be one integer number of milliseconds "
                         f"(0..999999999999), got {', '.join(values)!r}")
    return time.monotonic() + int(values[0].strip()) / 1000


def _mode(request: Request) -> Mode:
    prefer = {token.strip().lower()
              for value in request.headers.getlist(PREFER_HEADER)
              for token in re.split(r"[,;]", value)}
    accept = {part.split(";")[0].strip().lower()
              for value in request.headers.getlist("accept") for part in value.split(",")}
    respond_async, stream = RESPOND_ASYNC in prefer, NDJSON in accept
    if respond_async and stream:
        raise BadRequest(f"choose one of 'Prefer: {RESPOND_ASYNC}' and 'Accept: {NDJSON}'")
    return "async" if respond_async else "stream" if stream else "sync"


def _outcome_response(outcome: Outcome, request_id: str | None) -> JSONResponse:
    headers = {LLM_CALLS_HEADER: str(outcome.llm_calls)}
    if outcome.replayed:
        headers[REPLAYED_HEADER] = "true"
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    if outcome.reply is not None:
        return JSONResponse(outcome.reply, headers=headers)
    error = outcome.error or WrapperError("run failed")
    return JSONResponse(error_body(error.code, error.message), status_code=error.status_code,
                        headers={**headers, **_retry_after(error)})


async def _run(framework_name: str, body: RunRequest, request: Request, registry: Registry,
               manager: Manager, store: Store, caller: Caller) -> Response:
    framework = FRAMEWORKS[framework_name]
    try:
        deadline = _deadline(request)
        mode = _mode(request)
        agent = registry.resolve(framework_name, body.agent)
        if "resume" not in body.model_fields_set:  # a resumed graph takes no new input
            agent.check_input(body.input_data, body.goal, body.context)
    except WrapperError as exc:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code)
    session_id = body.federation_session_id or str(uuid.uuid4())
    # Async and streamed runs always get an id: it names them for status and cancel.
    request_id = body.request_id or (None if mode == "sync" else str(uuid.uuid4()))
    route = framework.ROUTE
    spec = RunSpec(framework=framework_name, agent=agent.name, span_name=framework.SPAN_NAME,
                   runner=functools.partial(framework.run, agent), route=route, body=body,
                   session_id=session_id, request_id=request_id,
                   body_hash=body_sha256(route, body.goal, body.context, body.input_data,
                                         body.metadata, body.extra_identity()),
                   trace_id=telemetry.current_trace_id(), deadline=deadline,
                   carrier=_trace_carrier(), durable_start=mode != "sync")
    # Copied now, with the server span current: the run's spans become its children.
    ctx = contextvars.copy_context()
    headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
    try:
        # The session is the caller's from its first request on (claimed atomically).
        await anyio.to_thread.run_sync(
            functools.partial(check_owner, store, session_id, caller, claim=True))
        started = await manager.submit(spec, ctx)
        if mode == "async":
            if started.kind == "attach" and started.record is not None:
                started = await manager.take_over_if_stale(spec, started.record, ctx) or started
            return JSONResponse(public_view(started.record or {}), status_code=202,
                                headers={**headers,
                                         "location": run_record_path(session_id, request_id),
                                         PREFERENCE_APPLIED_HEADER: RESPOND_ASYNC})
        if mode == "stream":
            if started.kind != "run":
                headers[REPLAYED_HEADER] = "true"
            return StreamingResponse(manager.stream(started, spec, ctx), media_type=NDJSON,
                                     headers={**headers, "cache-control": "no-cache"})
        outcome = await manager.outcome(started, spec, ctx)
    except WrapperError as exc:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code,
                            headers={**headers, **_retry_after(exc)})
    return _outcome_response(outcome, request_id)


def _trace_carrier() -> dict[str, str]:
    """The current trace as W3C headers, for a worker that takes the run from the queue."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def _retry_after(error: WrapperError) -> dict[str, str]:
    if isinstance(error, Overloaded):
        return {RETRY_AFTER_HEADER: str(error.retry_after_s)}
    return {}


@router.post(RUN_CREW, response_model=RunResponse, responses=_RUN_RESPONSES,
             summary="Run a CrewAI crew (the agent named in the body, or the built-in "
                     "researcher -> writer) for a session")
async def run_crew(body: RunRequest, request: Request, registry: Registry,
                   manager: Manager, store: Store, caller: Caller) -> Response:
    return await _run("crewai", body, request, registry, manager, store, caller)


@router.post(RUN_GRAPH, response_model=RunResponse, responses=_RUN_RESPONSES,
             summary="Run a LangGraph graph (the agent named in the body, or the built-in "
                     "plan -> respond) for a session; answer an interrupt with `resume`")
async def run_graph(body: RunRequest, request: Request, registry: Registry,
                    manager: Manager, store: Store, caller: Caller) -> Response:
    return await _run("langgraph", body, request, registry, manager, store, caller)


@router.get(AGENTS, response_model=AgentList,
            summary="The registered agents: name, framework, input schema, tools")
async def list_agents(registry: Registry, _caller: Caller,
                      framework: Framework | None = None) -> AgentList:
    return AgentList.model_validate({"agents": registry.listing(framework)})


@router.get(HEALTHZ, summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(READYZ, summary="Readiness: store reachable and LLM configured")
async def readyz(state: Annotated[Any, Depends(wrapper_state)]) -> JSONResponse:
    reasons = list(state.llm_factory.configured())
    try:
        await anyio.to_thread.run_sync(state.store.ping)
    except StoreUnavailable as exc:
        reasons.append(exc.message)
    if reasons:
        return JSONResponse({"status": "unavailable", "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready", "store": state.store.kind,
                         "llm": state.llm_factory.bundle().describe()})
