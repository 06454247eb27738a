"""Request and response models of the wrapper HTTP contract (used by the Rust adapters)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_wrapper.store.session_id import session_id_problem


class RunRequest(BaseModel):
    """Body of ``POST /v1/run_crew`` and ``POST /v1/run_graph``."""

    # Unknown fields are ignored so newer adapters can send more.
    model_config = ConfigDict(extra="ignore")

    goal: str = Field(min_length=1, description="What the agents should achieve.")
    context: str = Field(default="", description="Free-text background.")
    input_data: dict[str, Any] = Field(default_factory=dict, description="Structured input.")
    federation_session_id: str | None = Field(
        default=None, description="1..128 chars of [A-Za-z0-9._:-]; generated (uuid4) if absent.")
    request_id: str | None = None

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

    @field_validator("federation_session_id")
    @classmethod
    def _session_ok(cls, value: str | None) -> str | None:
        if value is not None and (problem := session_id_problem(value)):
            raise ValueError(problem)
        return value


class Step(BaseModel):
    name: str
    agent: str | None
    output: str
    resumed_from_checkpoint: bool


class HistoryItem(BaseModel):
    request_id: str | None
    goal: str
    output: str
    finished_at: str
    framework: str | None = None


class LLMInfo(BaseModel):
    provider: Literal["offline", "openai-compatible"]
    model: str


class StateInfo(BaseModel):
    store: Literal["file", "redis"]
    run_count: int
    checkpoint: str | None


class Message(BaseModel):
    role: str
    content: str


class RunResponse(BaseModel):
    """Success reply; ``messages`` is only present for ``/v1/run_graph``."""

    output: str
    framework: Literal["crewai", "langgraph"]
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
