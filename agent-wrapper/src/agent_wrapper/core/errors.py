"""Typed errors that map to the wrapper's JSON error envelope and HTTP status: one class
per ``contract.ErrorCode`` the wrapper raises, its status taken from the code."""

from typing import Any

from agent_wrapper.contract import ErrorCode


class WrapperError(Exception):
    """An error with a stable machine-readable code and an HTTP status. A subclass names
    its code (``class SessionBusy(WrapperError, code=ErrorCode.SESSION_BUSY)``) and gets
    the code's HTTP status; a rebuilt stored error (``error_from_info``) keeps whatever
    status and code it was stored with."""

    status_code: int = ErrorCode.INTERNAL.http_status
    code: str = ErrorCode.INTERNAL

    def __init_subclass__(cls, code: ErrorCode | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
            cls.status_code = code.http_status

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(WrapperError, code=ErrorCode.BAD_REQUEST):
    """A malformed header or path parameter (the body is ``InvalidInput``)."""


class Unauthenticated(WrapperError, code=ErrorCode.UNAUTHENTICATED):
    """A /v1 request without the host's credential (when one is configured)."""


class SessionNotOwned(WrapperError, code=ErrorCode.SESSION_NOT_OWNED):
    """The session belongs to another principal: nobody else may run, read, stream or
    cancel anything in it."""


class InvalidInput(WrapperError, code=ErrorCode.INVALID_INPUT):
    """The request body does not fit (a field, or the agent's inputs)."""


class PayloadTooLarge(WrapperError, code=ErrorCode.PAYLOAD_TOO_LARGE):
    """The request body exceeds ``AGENT_WRAPPER_MAX_BODY_BYTES``."""


class SessionBusy(WrapperError, code=ErrorCode.SESSION_BUSY):
    """Another request of the session is running."""


class StoreUnavailable(WrapperError, code=ErrorCode.STORE_UNAVAILABLE):
    """The state store cannot be reached (or refused a write)."""


class LLMFailure(WrapperError, code=ErrorCode.LLM_FAILURE):
    """An LLM call of the run failed."""


class RunNotFound(WrapperError, code=ErrorCode.RUN_NOT_FOUND):
    """No run of this id in the session (never started, or its record expired)."""


class RequestIdReused(WrapperError, code=ErrorCode.REQUEST_ID_REUSED):
    """The ``request_id`` already names a run of a different request body."""


class RunCanceled(WrapperError, code=ErrorCode.CANCELED):
    """The run was canceled through the cancel route (non-standard 499, like nginx's
    "client closed request"; the host maps it to gRPC CANCELLED)."""


class RunSuperseded(WrapperError, code=ErrorCode.RUN_SUPERSEDED):
    """Another request took the run over (its owner looked dead: lock lost)."""


class DeadlineExceeded(WrapperError, code=ErrorCode.DEADLINE_EXCEEDED):
    """The caller's ``x-federation-deadline-ms`` passed before the run finished."""


class ShuttingDown(WrapperError, code=ErrorCode.SHUTTING_DOWN):
    """The wrapper stopped the run because it is shutting down; retry elsewhere."""


class Overloaded(WrapperError, code=ErrorCode.OVERLOADED):
    """Every run slot of this worker is busy and the queue is full (or there is no
    queue): retry after ``retry_after_s`` (sent as ``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AgentNotFound(WrapperError, code=ErrorCode.AGENT_NOT_FOUND):
    """The request names an agent the registry does not have (the message lists them)."""


class NoPendingInterrupt(WrapperError, code=ErrorCode.NO_PENDING_INTERRUPT):
    """``resume`` was sent, but the session's agent is not waiting for input."""


class InputRequired(WrapperError, code=ErrorCode.INPUT_REQUIRED):
    """A new request on a session whose agent waits for input: answer with ``resume``."""


class RegistryError(Exception):
    """A broken agent registry entry; the wrapper refuses to start (names the entry)."""


def error_info(error: WrapperError) -> dict:
    """How a run record / a ``failed`` event stores an error."""
    return {"status": error.status_code, "code": str(error.code), "message": error.message}


def error_from_info(info: dict) -> WrapperError:
    """Rebuild the typed error a stored run failed with (same status, code, message)."""
    error = WrapperError(str(info.get("message", "run failed")))
    error.status_code = int(info.get("status", 500))
    error.code = str(info.get("code", ErrorCode.INTERNAL))
    return error
