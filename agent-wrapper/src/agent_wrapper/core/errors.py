"""Typed errors that map to the wrapper's JSON error envelope and HTTP status."""


class WrapperError(Exception):
    """An error with a stable machine-readable code and an HTTP status."""

    status_code = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(WrapperError):
    """A malformed header or path parameter (the body is ``InvalidInput``)."""

    status_code = 400
    code = "bad_request"


class Unauthenticated(WrapperError):
    """A /v1 request without the host's credential (when one is configured)."""

    status_code = 401
    code = "unauthenticated"


class SessionNotOwned(WrapperError):
    """The session belongs to another principal: nobody else may run, read, stream or
    cancel anything in it."""

    status_code = 403
    code = "session_not_owned"


class InvalidInput(WrapperError):
    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(WrapperError):
    status_code = 413
    code = "payload_too_large"


class SessionBusy(WrapperError):
    status_code = 409
    code = "session_busy"


class StoreUnavailable(WrapperError):
    status_code = 503
    code = "store_unavailable"


class LLMFailure(WrapperError):
    status_code = 502
    code = "llm_failure"


class RunNotFound(WrapperError):
    status_code = 404
    code = "run_not_found"


class RequestIdReused(WrapperError):
    """The ``request_id`` already names a run of a different request body."""

    status_code = 412
    code = "request_id_reused"


class RunCanceled(WrapperError):
    """The run was canceled through the cancel route (non-standard 499, like nginx's
    "client closed request"; the host maps it to gRPC CANCELLED)."""

    status_code = 499
    code = "canceled"


class RunSuperseded(WrapperError):
    """Another request took the run over (its owner looked dead: lock lost)."""

    status_code = 409
    code = "run_superseded"


class DeadlineExceeded(WrapperError):
    """The caller's ``x-federation-deadline-ms`` passed before the run finished."""

    status_code = 504
    code = "deadline_exceeded"


class ShuttingDown(WrapperError):
    """The wrapper stopped the run because it is shutting down; retry elsewhere."""

    status_code = 503
    code = "shutting_down"


class Overloaded(WrapperError):
    """Every run slot of this worker is busy and the queue is full (or there is no
    queue): retry after ``retry_after_s`` (sent as ``Retry-After``)."""

    status_code = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AgentNotFound(WrapperError):
    """The request names an agent the registry does not have (the message lists them)."""

    status_code = 404
    code = "agent_not_found"


class NoPendingInterrupt(WrapperError):
    """``resume`` was sent, but the session's agent is not waiting for input."""

    status_code = 412
    code = "no_pending_interrupt"


class InputRequired(WrapperError):
    """A new request on a session whose agent waits for input: answer with ``resume``."""

    status_code = 412
    code = "input_required"


class RegistryError(Exception):
    """A broken agent registry entry; the wrapper refuses to start (names the entry)."""


def error_body(code: str, message: str) -> dict:
    """The one error shape every 4xx/5xx reply uses."""
    return {"error": {"code": code, "message": message}}


def error_info(error: WrapperError) -> dict:
    """How a run record / a ``failed`` event stores an error."""
    return {"status": error.status_code, "code": error.code, "message": error.message}


def error_from_info(info: dict) -> WrapperError:
    """Rebuild the typed error a stored run failed with (same status, code, message)."""
    error = WrapperError(str(info.get("message", "run failed")))
    error.status_code = int(info.get("status", 500))
    error.code = str(info.get("code", "internal"))
    return error
