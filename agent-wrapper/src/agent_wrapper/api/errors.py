"""Exception handlers: every 4xx/5xx reply is ``{"error": {"code", "message"}}``."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent_wrapper.contract import ErrorCode, error_body
from agent_wrapper.core.errors import WrapperError

log = logging.getLogger(__name__)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WrapperError)
    async def _wrapper_error(_: Request, exc: WrapperError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        code = ErrorCode.INVALID_INPUT
        return JSONResponse(error_body(code, _describe(exc)), status_code=code.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = ErrorCode.for_http_status(exc.status_code)
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        code = ErrorCode.INTERNAL
        return JSONResponse(error_body(code, f"internal error: {type(exc).__name__}"),
                            status_code=code.http_status)
