"""The names of the wrapper's HTTP contract, in one place: routes, header names, media
types, framework names, run statuses, event types and the error codes with their HTTP
status and the gRPC code the federation host answers for them.

The body shapes are ``models.py``. On the Rust side ``federation-wire``
(``host/federation-wire``) owns the same contract; the golden fixtures in
``host/federation-wire/tests/golden`` (written by its ``generate.py`` from this module and
``models.py``) bind the two, and the wrapper's tests check its replies against them.
Everything in the wrapper that names a route, a header or an error code imports it
from here.
"""

from enum import StrEnum
from typing import Literal, get_args

# -- routes ------------------------------------------------------------------------------
# The run routes: CrewAI, LangGraph (a run record's ``route``).
RunRoute = Literal["/v1/run_crew", "/v1/run_graph"]
RUN_CREW, RUN_GRAPH = get_args(RunRoute)
AGENTS = "/v1/agents"
RUN_RECORD = "/v1/sessions/{federation_session_id}/runs/{request_id}"
RUN_CANCEL = RUN_RECORD + "/cancel"
RUN_EVENTS = RUN_RECORD + "/events"
HEALTHZ = "/healthz"
READYZ = "/readyz"


def run_record_path(session_id: str, request_id: str) -> str:
    """Where a run's record is (the ``Location`` of a 202)."""
    return RUN_RECORD.format(federation_session_id=session_id, request_id=request_id)


# -- headers (lowercase, as ASGI gives them) ----------------------------------------------
# The host's credential (when the wrapper is configured with one) and the principal it
# vouches for.
CREDENTIAL_HEADER = "x-federation-host-credential"
PRINCIPAL_HEADER = "x-federation-principal"
# Milliseconds left for the whole task.
DEADLINE_HEADER = "x-federation-deadline-ms"
# Reply headers of a run route.
REQUEST_ID_HEADER = "x-agent-wrapper-request-id"
LLM_CALLS_HEADER = "x-agent-wrapper-llm-calls"
REPLAYED_HEADER = "x-agent-wrapper-replayed"
RETRY_AFTER_HEADER = "retry-after"
# `Prefer: respond-async` answers 202 with the run record at once.
PREFER_HEADER = "prefer"
PREFERENCE_APPLIED_HEADER = "preference-applied"
RESPOND_ASYNC = "respond-async"

# -- media types ---------------------------------------------------------------------------
JSON = "application/json"
NDJSON = "application/x-ndjson"

# -- names in bodies -----------------------------------------------------------------------
Framework = Literal["crewai", "langgraph"]
FRAMEWORK_NAMES: tuple[str, ...] = get_args(Framework)

RunStatus = Literal["submitted", "working", "completed", "input_required", "failed",
                    "canceled"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)

EventType = Literal["started", "step", "llm_call", "tool_call", "checkpoint_saved",
                    "completed", "failed", "canceled"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
TERMINAL_EVENTS = frozenset({"completed", "failed", "canceled"})


# -- error codes -----------------------------------------------------------------------------
class ErrorCode(StrEnum):
    """``error.code`` of every 4xx/5xx body (``{"error": {"code", "message"}}``), with the
    HTTP status the wrapper sends it with and the gRPC code the host answers for that
    status (federation-wire's ``GrpcCode::of_http_status``; ``ERROR_CODES`` there is bound
    to this enum by ``tests/golden/error_codes.json``)."""

    http_status: int
    grpc_code: str

    def __new__(cls, code: str, http_status: int, grpc_code: str) -> "ErrorCode":
        member = str.__new__(cls, code)
        member._value_ = code
        member.http_status = http_status
        member.grpc_code = grpc_code
        return member

    BAD_REQUEST = "bad_request", 400, "INVALID_ARGUMENT"
    UNAUTHENTICATED = "unauthenticated", 401, "INTERNAL"  # the host's misconfiguration
    SESSION_NOT_OWNED = "session_not_owned", 403, "PERMISSION_DENIED"
    NOT_FOUND = "not_found", 404, "NOT_FOUND"  # no such route
    RUN_NOT_FOUND = "run_not_found", 404, "NOT_FOUND"
    AGENT_NOT_FOUND = "agent_not_found", 404, "NOT_FOUND"
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "FAILED_PRECONDITION"
    SESSION_BUSY = "session_busy", 409, "ABORTED"
    RUN_SUPERSEDED = "run_superseded", 409, "ABORTED"
    REQUEST_ID_REUSED = "request_id_reused", 412, "FAILED_PRECONDITION"
    NO_PENDING_INTERRUPT = "no_pending_interrupt", 412, "FAILED_PRECONDITION"
    INPUT_REQUIRED = "input_required", 412, "FAILED_PRECONDITION"
    PAYLOAD_TOO_LARGE = "payload_too_large", 413, "RESOURCE_EXHAUSTED"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "FAILED_PRECONDITION"
    INVALID_INPUT = "invalid_input", 422, "INVALID_ARGUMENT"
    # Non-standard, like nginx's "client closed request": the run was canceled.
    CANCELED = "canceled", 499, "CANCELLED"
    INTERNAL = "internal", 500, "INTERNAL"
    LLM_FAILURE = "llm_failure", 502, "INTERNAL"
    STORE_UNAVAILABLE = "store_unavailable", 503, "UNAVAILABLE"
    SHUTTING_DOWN = "shutting_down", 503, "UNAVAILABLE"
    OVERLOADED = "overloaded", 503, "UNAVAILABLE"  # with Retry-After
    DEADLINE_EXCEEDED = "deadline_exceeded", 504, "DEADLINE_EXCEEDED"

    @classmethod
    def for_http_status(cls, status: int) -> "ErrorCode":
        """The code of a framework-raised HTTP error (routing, media type) by its status;
        one the wrapper has no code for is ``bad_request`` (4xx) or ``internal``."""
        by_status = {400: cls.BAD_REQUEST, 404: cls.NOT_FOUND, 405: cls.METHOD_NOT_ALLOWED,
                     413: cls.PAYLOAD_TOO_LARGE, 415: cls.UNSUPPORTED_MEDIA_TYPE,
                     422: cls.INVALID_INPUT}
        if status in by_status:
            return by_status[status]
        return cls.BAD_REQUEST if status < 500 else cls.INTERNAL


def error_body(code: str, message: str) -> dict:
    """The one error shape every 4xx/5xx reply uses (``models.ErrorResponse``)."""
    return {"error": {"code": str(code), "message": message}}


def error_codes_table() -> list[dict]:
    """Every error code, sorted by code, as the golden ``error_codes.json`` lists them."""
    return [{"code": code.value, "http_status": code.http_status, "grpc_code": code.grpc_code}
            for code in sorted(ErrorCode, key=lambda c: c.value)]
