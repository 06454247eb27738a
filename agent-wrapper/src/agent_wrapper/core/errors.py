"""Typed errors that map to the wrapper's JSON error envelope and HTTP status."""


class WrapperError(Exception):
    """An error with a stable machine-readable code and an HTTP status."""

    status_code = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


def error_body(code: str, message: str) -> dict:
    """The one error shape every 4xx/5xx reply uses."""
    return {"error": {"code": code, "message": message}}
