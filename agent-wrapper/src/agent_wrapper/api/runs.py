"""Run routes keyed by ``(federation_session_id, request_id)``: status, cancel, and
the run's events (replayed after a seq, then followed live).

All read the run record from the state store, so they answer for runs on any
replica sharing the store, and only to the principal that owns the session.
"""

import functools
from typing import Annotated

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse

from agent_wrapper.api.deps import Caller, Manager, Records, Store, check_owner
from agent_wrapper.contract import NDJSON, RUN_CANCEL, RUN_EVENTS, RUN_RECORD, error_body
from agent_wrapper.core.errors import BadRequest, RunNotFound, WrapperError
from agent_wrapper.models import ErrorResponse, RunEvent, RunRecordView
from agent_wrapper.runs import ACTIVE, RunRecord, public_view
from agent_wrapper.runs.events import encode, follow_record
from agent_wrapper.store.session_id import request_id_problem, session_id_problem

router = APIRouter()

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 500, 503)}


async def _check_access(store: Store, session_id: str, request_id: str,
                        caller: str) -> None:
    problem = session_id_problem(session_id) or request_id_problem(request_id)
    if problem:
        raise BadRequest(problem)
    await anyio.to_thread.run_sync(
        functools.partial(check_owner, store, session_id, caller, claim=False))


def _error(exc: WrapperError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code)


def _unknown(session_id: str, request_id: str) -> RunNotFound:
    return RunNotFound(f"no run {request_id!r} in session {session_id!r} (never started, "
                       "or its record expired)")


async def _record(records: Records, store: Store, session_id: str, request_id: str,
                  caller: str) -> RunRecord:
    """The run's record, for its session's owner (400, 403, 404 otherwise)."""
    await _check_access(store, session_id, request_id, caller)
    record = await anyio.to_thread.run_sync(records.get, session_id, request_id)
    if record is None:
        raise _unknown(session_id, request_id)
    return record


@router.get(RUN_RECORD,
            response_model=RunRecordView, responses=_ERRORS,
            summary="Status of a run: status, progress, result or error")
async def run_status(federation_session_id: str, request_id: str, records: Records,
                     store: Store, caller: Caller) -> JSONResponse:
    try:
        record = await _record(records, store, federation_session_id, request_id, caller)
    except WrapperError as exc:
        return _error(exc)
    return JSONResponse(public_view(record))


@router.post(RUN_CANCEL,
             response_model=RunRecordView, status_code=202,
             responses={**_ERRORS, 200: {"model": RunRecordView,
                                         "description": "The run had already finished."}},
             summary="Cancel a run at its next step boundary (any replica)")
async def cancel_run(federation_session_id: str, request_id: str, manager: Manager,
                     store: Store, caller: Caller) -> JSONResponse:
    try:
        await _check_access(store, federation_session_id, request_id, caller)
        record = await manager.cancel(federation_session_id, request_id)
        if record is None:
            raise _unknown(federation_session_id, request_id)
    except WrapperError as exc:
        return _error(exc)
    # 202: cancel requested, the run stops at its next step boundary; 200: it had
    # already finished, nothing to cancel (the record says how it ended).
    status = 202 if record.status in ACTIVE else 200
    return JSONResponse(public_view(record), status_code=status)


@router.get(RUN_EVENTS, response_model=None,
            responses={**_ERRORS, 200: {
                "content": {NDJSON: {"schema": RunEvent.model_json_schema()}},
                "description": "The run's events with seq > after, one RunEvent per line, "
                               "live until its terminal event."}},
            summary="Rejoin a run's event stream after the last seq seen (any replica)")
async def run_events(federation_session_id: str, request_id: str, manager: Manager,
                     records: Records, store: Store, caller: Caller,
                     after: Annotated[int, Query(ge=0, description="Last seq seen.")] = 0
                     ) -> StreamingResponse | JSONResponse:
    try:
        await _record(records, store, federation_session_id, request_id, caller)
    except WrapperError as exc:
        return _error(exc)
    load = functools.partial(anyio.to_thread.run_sync, records.get, federation_session_id,
                             request_id)

    def local():
        active = manager.local(federation_session_id, request_id)
        return None if active is None else active.events

    async def lines():
        async for event in follow_record(load, local, after,
                                         manager.settings.run_poll_ms / 1000):
            yield encode(event)

    return StreamingResponse(lines(), media_type=NDJSON)
