"""http-agent: a generic adapter, written in Python, for any agent behind the wrapper's HTTP API.

Built into a WebAssembly component with componentize-py against the same WIT world as
the Rust adapters (`wit/agent-backend.wit`, world `agent-backend`); see README.md.
It POSTs the standard wrapper body to `/v1/run_graph`, or to the route a task names in
its metadata (`http_agent.route`), and maps the reply or the failure to the world's types.
The agent the caller named and its answer to an interrupt (the `interaction` import) go
into the body; a reply asking for input is reported back through `interaction`.
It behaves like the Rust adapters (adapters/sdk/src/lib.rs) error for error: a wrapper
error reply becomes `upstream-status` with the wrapper's message, and its error code and
`Retry-After` go to the host as data through the `upstream` import (contract 0.1.3), from
which the host builds the error's `ErrorInfo.reason` and `RetryInfo`.
"""

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import interaction, log, outbound_http, upstream
from wit_world.imports.types import (
    AdapterError,
    AdapterError_Internal,
    AdapterError_InvalidInput,
    AdapterError_Timeout,
    AdapterError_Transport,
    AdapterError_UpstreamStatus,
    AdapterInfo,
    Task,
    TaskResponse,
    UpstreamStatus,
)

NAME = "http-agent"
VERSION = "0.2.0"
DEFAULT_ROUTE = "/v1/run_graph"
ROUTE_METADATA_KEY = "http_agent.route"
MAX_ROUTE_LEN = 256
# Longest upstream error text carried into an adapter-error (bytes, like the Rust SDK).
MAX_ERROR_EXCERPT = 512
# The wrapper's error codes are short snake_case words (`session_busy`).
_CODE_RE = re.compile(r"[a-z0-9_]{1,64}")
# `Retry-After` in whole seconds (an HTTP date is ignored), as Rust parses a u64.
_SECONDS_RE = re.compile(r"\+?[0-9]+")
_MAX_U64 = 2**64 - 1


class WitWorld(wit_world.WitWorld):
    """The exports of the `agent-backend` world."""

    def describe(self) -> AdapterInfo:
        # Called once at load time; must not call imports.
        return AdapterInfo(
            name=NAME,
            version=VERSION,
            framework="http-agent",
            route=DEFAULT_ROUTE,
            description="Generic HTTP agent (Python, componentize-py) via the agent wrapper",
        )

    def run_task(self, task: Task) -> TaskResponse:
        # componentize-py maps `result<task-response, adapter-error>`: return the
        # response, raise Err(adapter-error) for a typed error. Any other exception traps.
        try:
            route = route_for(task)
            body = wrapper_payload(task)
            reply = post_json(task, route, body)
            return response_from_reply(task, reply)
        except AdapterFailure as failure:
            log.log(log.Level.WARN, f"{NAME}: {failure.error}")
            raise Err(failure.error) from None


class AdapterFailure(Exception):
    """Carries a typed adapter-error out of the helpers."""

    def __init__(self, error: AdapterError):
        super().__init__(error)
        self.error = error


def route_for(task: Task) -> str:
    """The wrapper route: `http_agent.route` from the task's metadata, else the default."""
    route = dict(task.metadata).get(ROUTE_METADATA_KEY, DEFAULT_ROUTE)
    if (
        not route.startswith("/")
        or route.startswith("//")
        or len(route) > MAX_ROUTE_LEN
        or any(c.isspace() or ord(c) < 0x20 or c in "?#" for c in route)
    ):
        raise AdapterFailure(
            AdapterError_InvalidInput(
                f"metadata {ROUTE_METADATA_KEY} must be a path starting with '/' (no '//', "
                f"query, fragment or whitespace, at most {MAX_ROUTE_LEN} chars): {route!r}"
            )
        )
    return route


def wrapper_payload(task: Task) -> dict:
    """The JSON body the wrapper's run routes take (`agent`/`resume` only when given)."""
    try:
        input_data = json.loads(task.input_data)
    except ValueError as e:
        raise AdapterFailure(AdapterError_InvalidInput(f"input_data is not JSON: {e}")) from None
    if not isinstance(input_data, dict):
        raise AdapterFailure(AdapterError_InvalidInput("input_data must be a JSON object"))
    body = {
        "goal": task.goal,
        "context": task.context,
        "input_data": input_data,
        "federation_session_id": task.federation_session_id,
        "request_id": task.request_id,
        "metadata": dict(task.metadata),
    }
    agent = interaction.agent()
    if agent:
        body["agent"] = agent
    # The key's presence is what makes a resume: even JSON null answers the interrupt.
    resume = interaction.resume_json()
    if resume is not None:
        try:
            body["resume"] = json.loads(resume)
        except ValueError as e:
            raise AdapterFailure(AdapterError_InvalidInput(f"resume is not JSON: {e}")) from None
    return body


def post_json(task: Task, route: str, body: dict) -> dict:
    """POSTs `body` to `{wrapper_url}{route}` through the host and returns the reply object.

    The host sets traceparent/tracestate itself; this adapter never does.
    """
    url = task.wrapper_url.rstrip("/") + route
    request = outbound_http.Request(
        method=outbound_http.Method.POST,
        url=url,
        headers=[("content-type", "application/json"), ("accept", "application/json")],
        body=json.dumps(body, ensure_ascii=False).encode(),
        timeout_ms=None if task.deadline_ms is None else min(task.deadline_ms, 2**32 - 1),
    )
    log.log(log.Level.DEBUG, f"{NAME}: POST {url}")
    try:
        response = outbound_http.send(request)
    except Err as e:
        raise AdapterFailure(adapter_error_from_http(e.value)) from None
    if not 200 <= response.status < 300:
        report_wrapper_error(response)
        message = upstream_message(response.body)
        raise AdapterFailure(
            AdapterError_UpstreamStatus(UpstreamStatus(status=response.status, message=message))
        )
    try:
        reply = json.loads(response.body)
    except ValueError as e:
        raise AdapterFailure(
            AdapterError_Internal(f"wrapper reply is not JSON ({e}): {excerpt(response.body)}")
        ) from None
    if not isinstance(reply, dict):
        raise AdapterFailure(AdapterError_Internal("wrapper reply is not a JSON object"))
    return reply


def response_from_reply(task: Task, reply: dict) -> TaskResponse:
    """`output` is required (a non-string is kept as JSON), `resumed` defaults to false.

    A run that stopped to ask for input (`status` "input_required") reports its
    `interrupt` through `interaction.input_required`.
    """
    if "output" not in reply:
        raise AdapterFailure(AdapterError_Internal("wrapper reply has no `output`"))
    if reply.get("status") == "input_required":
        question = reply.get("interrupt")
        interaction.input_required(json.dumps(question, ensure_ascii=False, separators=(",", ":")))
    output = reply["output"]
    if not isinstance(output, str):
        output = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
    resumed = reply.get("resumed")
    session = reply.get("federation_session_id")
    return TaskResponse(
        output=output,
        result_json=json.dumps(reply, ensure_ascii=False, separators=(",", ":")),
        federation_session_id=session if isinstance(session, str) else task.federation_session_id,
        resumed=resumed if isinstance(resumed, bool) else False,
    )


def adapter_error_from_http(error: outbound_http.HttpError) -> AdapterError:
    """Transport failures and timeouts keep their kind; the rest is the adapter's problem."""
    if isinstance(error, outbound_http.HttpError_Transport):
        return AdapterError_Transport(error.value)
    if isinstance(error, outbound_http.HttpError_Timeout):
        return AdapterError_Timeout(error.value)
    if isinstance(error, outbound_http.HttpError_Denied):
        return AdapterError_Internal(f"outbound call denied: {error.value}")
    if isinstance(error, outbound_http.HttpError_InvalidRequest):
        return AdapterError_Internal(f"invalid outbound request: {error.value}")
    if isinstance(error, outbound_http.HttpError_TooLarge):
        return AdapterError_Internal(f"wrapper reply exceeds the {error.value}-byte cap")
    return AdapterError_Internal(f"outbound call failed: {error!r}")


def report_wrapper_error(response: outbound_http.Response) -> None:
    """Hands the host the wrapper's error code and `Retry-After` as data (the `upstream`
    import, contract 0.1.3), right before `run_task` fails with `upstream-status`: the
    host answers with the same ErrorInfo.reason and RetryInfo as for the Rust adapters."""
    upstream.report(
        upstream.WrapperError(
            code=upstream_code(response.body) or "",
            retry_after_secs=retry_after_seconds(retry_after(response.headers)),
        )
    )


def upstream_code(body: bytes) -> str | None:
    """The wrapper's error code in an error body (`error.code`), if it has a valid one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    error = value.get("error") if isinstance(value, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and _CODE_RE.fullmatch(code) else None


def retry_after(headers: list[tuple[str, str]]) -> str | None:
    """The `Retry-After` header of a response (the host gives names lowercase)."""
    return next((value for name, value in headers if name.lower() == "retry-after"), None)


def retry_after_seconds(value: str | None) -> int | None:
    """Whole seconds of a `Retry-After` value; None for an HTTP date or anything else."""
    if value is None or not _SECONDS_RE.fullmatch(value.strip()):
        return None
    seconds = int(value.strip())
    return seconds if seconds <= _MAX_U64 else None


_ABSENT = object()


def upstream_message(body: bytes) -> str:
    """The wrapper's error message (`{"error": {"message": ..}}`, FastAPI's `{"detail": ..}`,
    a bare `{"error": ..}`), or an excerpt of the raw body."""
    try:
        value = json.loads(body)
    except ValueError:
        return excerpt(body)
    message = _ABSENT
    if isinstance(value, dict):
        error = value.get("error", _ABSENT)
        if isinstance(error, dict) and "message" in error:
            message = error["message"]
        elif "detail" in value:
            message = value["detail"]
        else:
            message = error
    if message is _ABSENT:
        return excerpt(body)
    if not isinstance(message, str):
        # As serde_json (no preserve_order) writes a value: compact, keys sorted.
        message = json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return truncate(message)


def excerpt(body: bytes) -> str:
    return truncate(body.decode("utf-8", errors="replace"))


def truncate(text: str) -> str:
    """At most MAX_ERROR_EXCERPT bytes of UTF-8, cut on a character boundary."""
    raw = text.encode()
    if len(raw) <= MAX_ERROR_EXCERPT:
        return text
    return raw[:MAX_ERROR_EXCERPT].decode("utf-8", errors="ignore") + "…"
