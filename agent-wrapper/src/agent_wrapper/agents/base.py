"""What every registered agent says about itself, whatever its framework.

An agent is a name the caller puts in ``agent`` (gRPC ``TaskRequest.agent``), bound to
one framework (``crewai`` or ``langgraph``) and to the object that framework runs (a
crew factory, a graph). ``GET /v1/agents`` lists them with their input schema, enough
to derive an A2A-style agent card.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from agent_wrapper.core.errors import InvalidInput

# Agent names: what registry files and callers write; kept URL- and key-safe.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class RegisteredAgent:
    """The framework-independent part of an agent (subclasses add how to run it)."""

    name: str
    framework: str
    description: str
    source: str  # where it came from: a project path, a langgraph.json entry, "built-in"
    default: bool = False
    # True when the registry entry says the agent brings its own model; otherwise the
    # wrapper's configured LLM replaces every model the agent would use.
    own_llm: bool = False
    tools: list[str] = field(default_factory=list)
    can_request_input: bool = False

    def input_schema(self) -> dict[str, Any]:
        return {"type": "object"}

    def check_input(self, input_data: dict[str, Any], goal: str, context: str) -> None:
        """Raise ``InvalidInput`` naming the missing or wrong field, before anything runs."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "framework": self.framework,
                "description": self.description, "default": self.default,
                "input_schema": self.input_schema(),
                "can_request_input": self.can_request_input, "tools": list(self.tools),
                "llm": "own" if self.own_llm else "wrapper", "source": self.source}


def invalid(agent: str, path: str, problem: str) -> InvalidInput:
    return InvalidInput(f"input_data.{path} {problem} (agent {agent!r})")
