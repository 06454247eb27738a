"""The run record: what happened to the request ``(federation_session_id, request_id)``,
typed (``RunRecord``), and the JSON document the state store keeps of it (one per run,
in the file, Redis or SQL store, so every replica sees it), expiring
``AGENT_WRAPPER_RUN_RECORD_TTL_S`` after its last update::

    {"version": 1, "federation_session_id": str, "request_id": str,
     "route": "/v1/run_crew" | "/v1/run_graph", "framework": "crewai" | "langgraph",
     "body_sha256": sha256 of the canonical body (route, goal, context, input_data, metadata),
     "status": "submitted" | "working" | "completed" | "input_required" | "failed"
               | "canceled",
     "agent": str (the agent that runs it),
     "attempt": int, "owner": token of the attempt that runs it,
     "cancel_requested": bool, "trace_id": str,
     "progress": {"current_step": str | null, "steps": [str], "llm_calls": int},
     "result": reply | null, "error": {"status", "code", "message"} | null,
     "events": [event, ...] (the current attempt's progress events, see runs/events.py;
                at most MAX_LOGGED_EVENTS before the terminal one, which is always kept),
     "created_at": iso8601, "updated_at": iso8601}

How records change is ``records.py``; what a client sees of one is ``public_view``
(``models.RunRecordView``).
"""

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent_wrapper.contract import RunStatus
from agent_wrapper.core.errors import WrapperError, error_from_info, error_info

RECORD_VERSION = 1
ACTIVE = frozenset({"submitted", "working"})
# "input_required": the run ended waiting for the caller's answer (a LangGraph
# interrupt); like "completed" it holds the reply and is replayed, never re-run.
FINISHED = frozenset({"completed", "input_required"})
TERMINAL = FINISHED | {"failed", "canceled"}
# Fields a client may see (the owner token and the event log stay internal).
PUBLIC_FIELDS = ("federation_session_id", "request_id", "route", "framework", "agent", "status",
                 "attempt", "cancel_requested", "trace_id", "body_sha256", "progress",
                 "created_at", "updated_at")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def body_sha256(route: str, goal: str, context: str, input_data: dict[str, Any],
                metadata: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """sha256 of the canonical request body: sorted keys, no whitespace, UTF-8.

    ``extra`` holds the optional fields a request sent (``agent``, ``resume``); absent
    ones are left out, so a request without them hashes as it always did."""
    canonical = json.dumps({"route": route, "goal": goal, "context": context,
                            "input_data": input_data, "metadata": metadata, **(extra or {})},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RunProgress:
    """How far the run got: the step running now, the steps done, the LLM calls made."""

    current_step: str | None = None
    steps: tuple[str, ...] = ()
    llm_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"current_step": self.current_step, "steps": list(self.steps),
                "llm_calls": self.llm_calls}

    @classmethod
    def of(cls, value: "RunProgress | Mapping[str, Any] | None") -> "RunProgress":
        """A progress from its stored form (missing fields: nothing done yet)."""
        if isinstance(value, RunProgress):
            return value
        value = value or {}
        return cls(current_step=value.get("current_step"),
                   steps=tuple(value.get("steps") or ()),
                   llm_calls=int(value.get("llm_calls") or 0))


@dataclass(frozen=True)
class RunFailure:
    """How a failed or canceled run ended: its HTTP status, error code and message."""

    status: int
    code: str
    message: str

    @classmethod
    def of(cls, error: WrapperError) -> "RunFailure":
        return cls.from_dict(error_info(error))

    @classmethod
    def from_dict(cls, info: Mapping[str, Any]) -> "RunFailure":
        """From its stored form (as ``error_info`` writes it; missing: an internal error)."""
        error = error_from_info(dict(info))
        return cls(status=error.status_code, code=str(error.code), message=error.message)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}

    def to_error(self) -> WrapperError:
        """The typed error it was (same status, code and message)."""
        return error_from_info(self.to_dict())


@dataclass(frozen=True)
class RunRecord:
    """One run record (see the module docstring for its stored form)."""

    federation_session_id: str
    request_id: str
    route: str
    framework: str
    body_sha256: str
    status: RunStatus
    agent: str | None = None
    attempt: int = 1
    owner: str | None = None
    cancel_requested: bool = False
    trace_id: str = ""
    progress: RunProgress = RunProgress()
    result: dict[str, Any] | None = None  # the reply (models.RunResponse) once FINISHED
    error: RunFailure | None = None  # once failed or canceled
    events: tuple[dict[str, Any], ...] = ()
    created_at: str = ""
    updated_at: str = ""
    version: int = RECORD_VERSION
    # Fields of the stored document this version does not know, kept as they are.
    unknown: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The document the store keeps."""
        document = {**self.unknown, "version": self.version}
        for name in _STORED_FIELDS:
            document[name] = _stored(getattr(self, name))
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> "RunRecord":
        """A record from its stored document; a missing field takes its default."""
        error = document.get("error")
        return cls(
            federation_session_id=str(document.get("federation_session_id") or ""),
            request_id=str(document.get("request_id") or ""),
            route=str(document.get("route") or ""),
            framework=str(document.get("framework") or ""),
            body_sha256=str(document.get("body_sha256") or ""),
            status=document.get("status", "submitted"),
            agent=document.get("agent"),
            attempt=int(document.get("attempt") or 1),
            owner=document.get("owner"),
            cancel_requested=bool(document.get("cancel_requested")),
            trace_id=str(document.get("trace_id") or ""),
            progress=RunProgress.of(document.get("progress")),
            result=document.get("result"),
            error=None if error is None else RunFailure.from_dict(error),
            events=tuple(document.get("events") or ()),
            created_at=str(document.get("created_at") or ""),
            updated_at=str(document.get("updated_at") or ""),
            version=int(document.get("version") or RECORD_VERSION),
            unknown={k: v for k, v in document.items() if k not in _ALL_FIELDS})

    @classmethod
    def of(cls, value: "RunRecord | Mapping[str, Any]") -> "RunRecord":
        return value if isinstance(value, RunRecord) else cls.from_dict(value)

    def __getitem__(self, name: str) -> Any:
        """A field as the stored document has it (``record["status"]``)."""
        if name not in _STORED_FIELDS and name != "version":
            raise KeyError(name)
        return _stored(getattr(self, name))

    def changed(self, **changes: Any) -> "RunRecord":
        """This record with ``changes`` and a new ``updated_at``."""
        return dataclasses.replace(self, **changes, updated_at=now_iso())

    def age_s(self) -> float:
        """Seconds since the record was last updated."""
        try:
            updated = datetime.fromisoformat(self.updated_at)
        except (TypeError, ValueError):
            return 0.0
        return (datetime.now(UTC) - updated).total_seconds()

    def failure(self) -> WrapperError:
        """The error a run that did not finish ended with."""
        return (self.error or RunFailure(500, "internal", "run failed")).to_error()


_STORED_FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord)
                       if f.name not in ("version", "unknown"))
_ALL_FIELDS = frozenset(_STORED_FIELDS) | {"version"}


def _stored(value: Any) -> Any:
    if isinstance(value, RunProgress | RunFailure):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


def public_view(record: RunRecord | Mapping[str, Any]) -> dict[str, Any]:
    """The record as the status and cancel routes (and 202 replies) show it."""
    record = RunRecord.of(record)
    view = {name: record[name] for name in PUBLIC_FIELDS}
    if record.status in FINISHED:
        view["result"] = record.result
    if record.status in ("failed", "canceled"):
        view["error"] = record["error"]
    return view
