"""CrewAI Flows: a ``Flow`` class of a project ``crewai create flow`` made
(``src/<pkg>/main.py``), registered like a crew with ``flow = "module:Class"``.

The flow's inputs are its state: ``kickoff(inputs=...)`` gets ``input_data`` (plus the
task's ``goal`` and ``context`` where a structured state has fields of those names),
exactly as crewai merges inputs into the state, so a structured state's field types
are checked before anything runs. An unstructured (dict) state takes any object.
A method under ``@human_feedback`` makes the agent one that may ask for input.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent_wrapper.agents.base import RegisteredAgent, invalid
from agent_wrapper.core.errors import RegistryError

# Filled from the task itself when input_data does not set them and the state has them.
TASK_FIELDS = ("goal", "context")


@dataclass
class FlowAgent(RegisteredAgent):
    """A flow: ``flow_class(persistence=...)`` makes a fresh instance per run."""

    flow_class: Any = None
    # The structured state's model (None: a dict state) and its values before inputs.
    state_model: Any = None
    state_defaults: dict[str, Any] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)

    def input_schema(self) -> dict[str, Any]:
        if self.state_model is None:
            return {"type": "object", "description": "The flow's (unstructured) state: any "
                    "JSON object, merged into it as kickoff(inputs=...) does.",
                    "additionalProperties": True}
        schema = self.state_model.model_json_schema()
        schema.get("properties", {}).pop("id", None)
        schema["required"] = [key for key in schema.get("required", []) if key != "id"]
        return schema

    def inputs(self, request: Any) -> dict[str, Any]:
        """What ``kickoff(inputs=...)`` gets."""
        values = dict(request.input_data)
        fields = getattr(self.state_model, "model_fields", {})
        for key in TASK_FIELDS:
            if key in fields and key not in values:
                values[key] = getattr(request, key)
        return values

    def check_input(self, input_data: dict[str, Any], goal: str, context: str) -> None:
        if "id" in input_data:
            raise invalid(self.name, "id", "is the flow's state id: the wrapper sets it "
                          "(one flow run per session)")
        if self.state_model is None:
            return
        values = dict(input_data)
        for key, value in (("goal", goal), ("context", context)):
            if key in self.state_model.model_fields and key not in values:
                values[key] = value
        try:
            self.state_model.model_validate({**self.state_defaults, **values})
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(part) for part in first.get("loc", ())) or "(root)"
            problem = "is required" if first.get("type") == "missing" else str(first["msg"])
            raise invalid(self.name, path, problem) from None


def _feedback_methods(definition: Any) -> list[str]:
    return [name for name, method in definition.methods.items()
            if getattr(method, "human_feedback", None) is not None]


def _refusal(definition: Any) -> str | None:
    """Why the wrapper cannot run this flow faithfully, or None."""
    from crewai.flow.async_feedback import ConsoleProvider

    for name, method in definition.methods.items():
        feedback = getattr(method, "human_feedback", None)
        if feedback is not None and isinstance(feedback.provider, ConsoleProvider):
            return (f"method {name!r} asks for feedback with ConsoleProvider(), which reads "
                    "the wrapper's stdin; leave provider= out and the caller answers "
                    "through resume")
    return None


def load_flow_agent(name: str, entry: dict[str, Any], project: Path, *, default: bool,
                    own_llm: bool) -> FlowAgent:
    """A registry entry with ``flow = "module:Class"`` -> ``FlowAgent`` (made once)."""
    from crewai.flow.flow import Flow

    from agent_wrapper.agents.crews import import_attr

    src = project / "src" if (project / "src").is_dir() else project
    flow_class = import_attr(str(entry["flow"]), src, what="flow")
    if not (isinstance(flow_class, type) and issubclass(flow_class, Flow)):
        raise RegistryError(f"{entry['flow']} is not a crewai Flow class")
    try:
        flow = flow_class()
    except Exception as exc:
        raise RegistryError(f"creating the flow failed: {type(exc).__name__}: {exc}") from exc
    definition = type(flow).flow_definition()
    if (why := _refusal(definition)) is not None:
        raise RegistryError(why)
    state = flow.state
    structured = isinstance(state, BaseModel)
    defaults = state.model_dump() if structured else {}
    defaults.pop("id", None)
    description = str(entry.get("description") or (flow_class.__doc__ or "").strip()
                      .split("\n")[0] or f"CrewAI flow {flow_class.__name__}")
    return FlowAgent(name=name, framework="crewai", description=description,
                     source=f"{project} ({entry['flow']})", default=default, own_llm=own_llm,
                     can_request_input=bool(_feedback_methods(definition)),
                     flow_class=flow_class, state_model=type(state) if structured else None,
                     state_defaults=defaults, methods=list(definition.methods))
