"""Run routes keyed by ``(federation_session_id, request_id)``: status and cancel.

Both read the run record from the state store, so they answer for runs on any
replica sharing the store, and only to the principal that owns the session.
"""

import functools

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agent_wrapper.api.deps import Caller, Manager, Records, Store, check_owner
from agent_wrapper.core.errors import BadRequest, RunNotFound, WrapperError, error_body
from agent_wrapper.models import ErrorResponse, RunRecordView
from agent_wrapper.runs import ACTIVE, public_view
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


@router.get("/v1/sessions/{federation_session_id}/runs/{request_id}",
            response_model=RunRecordView, responses=_ERRORS,
            summary="Status of a run: status, progress, result or error")
async def run_status(federation_session_id: str, request_id: str, records: Records,
                     store: Store, caller: Caller) -> JSONResponse:
    try:
        await _check_access(store, federation_session_id, request_id, caller)
        record = await anyio.to_thread.run_sync(records.get, federation_session_id,
                                                request_id)
        if record is None:
            raise _unknown(federation_session_id, request_id)
    except WrapperError as exc:
        return _error(exc)
    return JSONResponse(public_view(record))


@router.post("/v1/sessions/{federation_session_id}/runs/{request_id}/cancel",
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
    status = 202 if record.get("status") in ACTIVE else 200
    return JSONResponse(public_view(record), status_code=status)
