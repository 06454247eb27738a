"""Request and response models of the wrapper HTTP contract: the body shapes, whose
names (routes, statuses, event types, error codes) are ``contract.py``'s. On the Rust side
``federation-wire`` binds the same shapes through the golden fixtures
(``host/federation-wire/tests/golden``, generated from these models)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_wrapper.agents.base import NAME_RE as AGENT_NAME_RE
from agent_wrapper.contract import EventType, Framework, RunRoute, RunStatus
from agent_wrapper.store.session_id import request_id_problem, session_id_problem


class RunRequest(BaseModel):
    """Body of ``POST /v1/run_crew`` and ``POST /v1/run_graph``."""

    # Unknown fields are ignored so newer adapters can send more.
    model_config = ConfigDict(extra="ignore")

    goal: str = Field(min_length=1, description="What the agents should achieve.")
    context: str = Field(default="", description="Free-text background.")
    input_data: dict[str, Any] = Field(default_factory=dict, description="Structured input.")
    federation_session_id: str | None = Field(
        default=None, description="1..128 chars of [A-Za-z0-9._:-]; generated (uuid4) if absent.")
    request_id: str | None = Field(
        default=None,
        description="Idempotency key of the run within the session (same rules as the "
                    "session id). A retry with the same id and body replays or attaches; "
                    "the same id with another body is 412 request_id_reused.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Caller metadata (JSON object), part of the body "
                                          "hash that identifies the request.")
    agent: str | None = Field(
        default=None, description="Name of a registered agent of this route's framework "
                                  "(GET /v1/agents); empty or absent: the default agent.")
    resume: Any = Field(
        default=None, description="Present (any JSON, even null): the answer to the "
                                  "interrupt the session's graph waits on "
                                  "(Command(resume=...)). Absent: a normal run.")

    def extra_identity(self) -> dict[str, Any]:
        """The optional fields that take part in the request's identity when sent."""
        extra: dict[str, Any] = {}
        if self.agent:
            extra["agent"] = self.agent
        if "resume" in self.model_fields_set:
            extra["resume"] = self.resume
        return extra

    @field_validator("goal")
    @classmethod
    def _goal_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("goal must not be blank")
        return value

    @field_validator("context", mode="before")
    @classmethod
    def _context_null(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("input_data", mode="before")
    @classmethod
    def _input_null(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_null(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("agent")
    @classmethod
    def _agent_ok(cls, value: str | None) -> str | None:
        if value and not AGENT_NAME_RE.fullmatch(value):
            raise ValueError("agent must be 1..64 characters of [A-Za-z0-9_.-], starting "
                             "with a letter or digit")
        return value or None

    @field_validator("federation_session_id")
    @classmethod
    def _session_ok(cls, value: str | None) -> str | None:
        if value is not None and (problem := session_id_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("request_id")
    @classmethod
    def _request_ok(cls, value: str | None) -> str | None:
        if value is not None and (problem := request_id_problem(value)):
            raise ValueError(problem)
        return value


class Step(BaseModel):
    name: str
    agent: str | None
    output: str
    resumed_from_checkpoint: bool


class HistoryItem(BaseModel):
    request_id: str | None
    agent: str | None = None
    goal: str
    output: str
    finished_at: str
    framework: str | None = None


class GatewayUsage(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int


class LLMInfo(BaseModel):
    provider: Literal["offline", "openai-compatible", "own"] = Field(
        description="own: the agent brings its own model (registry llm = \"own\").")
    model: str
    gateway: GatewayUsage | None = Field(
        default=None, description="Calls the agent's own model clients made through the "
                                  "wrapper's model gateway on the platform's model, and "
                                  "their tokens (absent when there were none).")


class StateInfo(BaseModel):
    store: Literal["sqlite", "postgres", "file", "redis"]
    run_count: int
    checkpoint: str | None


class Message(BaseModel):
    role: str
    content: str


class RunResponse(BaseModel):
    """Success reply; ``messages`` is only present for ``/v1/run_graph``."""

    output: str
    framework: Framework
    agent: str = Field(description="The registered agent that ran.")
    status: Literal["completed", "input_required"] = Field(
        description="input_required: the run stopped at an interrupt; answer with `resume`.")
    interrupt: Any = Field(default=None, description="What the run asks (the value given "
                                                     "to interrupt()), when input_required.")
    federation_session_id: str
    request_id: str | None
    resumed: bool
    trace_id: str = Field(description="32 lowercase hex characters of the current trace.")
    llm: LLMInfo
    steps: list[Step]
    history: list[HistoryItem]
    state: StateInfo
    messages: list[Message] | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class RunError(BaseModel):
    status: int = Field(description="HTTP status the run failed with (499 = canceled).")
    code: str
    message: str


class RunProgress(BaseModel):
    current_step: str | None
    steps: list[str] = Field(description="Steps finished so far (incl. resumed ones).")
    llm_calls: int


class RunRecordView(BaseModel):
    """A run record, as ``GET /v1/sessions/{id}/runs/{request_id}`` shows it."""

    federation_session_id: str
    request_id: str
    route: RunRoute
    framework: Framework
    agent: str | None = None
    status: RunStatus
    attempt: int
    cancel_requested: bool
    trace_id: str
    body_sha256: str
    progress: RunProgress
    created_at: str
    updated_at: str
    result: RunResponse | None = Field(default=None,
                                       description="Only when completed or input_required.")
    error: RunError | None = Field(default=None, description="Only when failed/canceled.")


class RunEvent(BaseModel):
    """One line of a run's NDJSON progress stream (``runs/events.py``): a run route's
    with ``Accept: application/x-ndjson``, and ``GET .../runs/{request_id}/events``'s."""

    seq: int = Field(ge=1, description="1, 2, 3, ... within one attempt, without gaps.")
    type: EventType
    trace_id: str
    ts: int = Field(description="Unix milliseconds.")
    data: dict[str, Any]


class AgentView(BaseModel):
    """One registered agent, as ``GET /v1/agents`` lists it (enough for an agent card)."""

    name: str
    framework: Framework
    description: str
    default: bool = Field(description="The agent a request without `agent` runs.")
    input_schema: dict[str, Any] = Field(description="JSON Schema of `input_data`.")
    can_request_input: bool = Field(description="Whether a run may end input_required.")
    tools: list[str]
    llm: Literal["wrapper", "own"] = Field(
        description="wrapper: runs on the wrapper's configured model; own: brings its own.")
    source: str


class AgentList(BaseModel):
    agents: list[AgentView]
