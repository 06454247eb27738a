"""CrewAI agents: the user's crew projects, in both layouts ``crewai create crew`` writes,
and the built-in crew (researcher -> writer). Flows (``flow = "module:Class"``) are
registered the same way (``flows.py``).

* classic (``--classic``): ``src/<pkg>/crew.py`` with a ``@CrewBase`` class,
  ``config/agents.yaml``, ``config/tasks.yaml``, ``tools/``; named ``module:Class``.
  The project's ``src/`` goes on ``sys.path`` so its own imports work.
* JSON (the crewai 1.15 default): ``crew.jsonc`` + ``agents/*.jsonc`` (+ ``tools/``),
  loaded with crewai's own loader (``crewai.project.crew_loader.load_crew``).

A crew is built once at registration (so a broken project fails the start, naming the
entry) and again for every run: crews hold per-run state (task outputs, interpolated
texts), so runs never share one. Its ``{placeholders}`` are the agent's inputs, filled
from ``input_data`` plus ``goal`` and ``context``, exactly as ``kickoff(inputs=...)``.
"""

import importlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_wrapper.agents.base import RegisteredAgent, invalid
from agent_wrapper.core.errors import RegistryError

# crewai's own placeholder pattern (crewai.utilities.string_utils._VARIABLE_PATTERN).
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*)}")
# Filled from the task itself when input_data does not set them.
TASK_FIELDS = ("goal", "context")
# How many finished runs of the session the built-in crew sees in its prompt.
HISTORY_IN_PROMPT = 5

CrewBuilder = Callable[[Any, Any, Any], Any]  # (request, session, llm) -> crewai.Crew


@dataclass
class CrewAgent(RegisteredAgent):
    """A crew: ``build(request, session, llm)`` makes a fresh ``crewai.Crew`` per run."""

    build: CrewBuilder | None = None
    placeholders: tuple[str, ...] = ()
    # The project's own input defaults (a JSON crew's "inputs"); input_data overrides them.
    input_defaults: dict[str, Any] = field(default_factory=dict)
    builtin: bool = False

    def _required(self) -> list[str]:
        return [name for name in self.placeholders
                if name not in TASK_FIELDS and name not in self.input_defaults]

    def input_schema(self) -> dict[str, Any]:
        if self.builtin:
            return {"type": "object", "description": "Any JSON object; the crew sees it as "
                    "text beside the goal and context.", "additionalProperties": True}
        properties = {
            name: {"description": f"fills {{{name}}} in the crew's agents and tasks"
                   + (" (default: the task's own field)" if name in TASK_FIELDS else ""),
                   "type": ["string", "number", "integer", "boolean", "object", "array"]}
            for name in self.placeholders
        }
        for name, value in self.input_defaults.items():
            if name in properties:
                properties[name]["default"] = value
        return {"type": "object", "properties": properties, "required": self._required(),
                "additionalProperties": True}

    def check_input(self, input_data: dict[str, Any], goal: str, context: str) -> None:
        if self.builtin:
            return
        required = self._required()
        for name in self.placeholders:
            if name not in required and name not in input_data:
                continue
            if name not in input_data:
                raise invalid(self.name, name, f"is required: it fills {{{name}}} in the crew")
            if input_data[name] is None:
                raise invalid(self.name, name, "must not be null")

    def inputs(self, request: Any) -> dict[str, Any] | None:
        """What ``kickoff(inputs=...)`` gets: ``input_data`` plus goal and context."""
        if self.builtin:
            return None
        return {**self.input_defaults, "goal": request.goal, "context": request.context,
                **request.input_data}


# -- loading -------------------------------------------------------------------------
def _texts(crew: Any) -> list[str]:
    texts: list[str] = []
    for agent in crew.agents:
        texts += [str(getattr(agent, attr, "") or "") for attr in ("role", "goal", "backstory")]
    for task in crew.tasks:
        texts += [str(task.description or ""), str(task.expected_output or "")]
    return texts


def placeholders_of(crew: Any) -> tuple[str, ...]:
    """The ``{names}`` the crew's agents and tasks use, in order of appearance."""
    seen: dict[str, None] = {}
    for text in _texts(crew):
        for name in PLACEHOLDER_RE.findall(text):
            seen.setdefault(name)
    return tuple(seen)


def refusal(crew: Any, own_llm: bool) -> str | None:
    """Why the wrapper cannot run this crew faithfully, or None."""
    if not crew.tasks:
        return "the crew has no tasks"
    for task in crew.tasks:
        if getattr(task, "async_execution", False):
            return (f"task {task.name!r} sets async_execution=True; checkpoints need the "
                    "tasks to finish in order")
    if own_llm:
        return None
    # These features call a model or an embedder of their own, which would silently be
    # a provider the wrapper was not configured with.
    if str(getattr(crew, "process", "")).endswith("hierarchical"):
        return "hierarchical crews need a manager LLM; set llm = \"own\" to bring it"
    if getattr(crew, "memory", False):
        return "memory=True needs an embedding model; set llm = \"own\" to bring it"
    if getattr(crew, "planning", False):
        return "planning=True calls a planning LLM; set llm = \"own\" to bring it"
    return None


def asks_for_human_input(crew: Any) -> bool:
    """A task with ``human_input=True`` ends a run ``input_required`` with its draft
    (``frameworks/crewai_human_input.py``)."""
    return any(getattr(task, "human_input", False) for task in crew.tasks)


def _tool_names(crew: Any) -> list[str]:
    names: dict[str, None] = {}
    for agent in crew.agents:
        for tool in getattr(agent, "tools", None) or []:
            names.setdefault(str(getattr(tool, "name", type(tool).__name__)))
    for task in crew.tasks:
        for tool in getattr(task, "tools", None) or []:
            names.setdefault(str(getattr(tool, "name", type(tool).__name__)))
    return list(names)


def import_attr(ref: str, search_path: Path, *, what: str = "crew") -> Any:
    """``module:Attr`` from ``search_path`` (put on ``sys.path``)."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        example = "my_crew.crew:MyCrew" if what == "crew" else "my_flow.main:MyFlow"
        raise RegistryError(f"{what} {ref!r} must be 'module:Class' (e.g. {example})")
    if str(search_path) not in sys.path:
        sys.path.insert(0, str(search_path))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise RegistryError(f"cannot import module {module_name!r} from {search_path}: "
                            f"{type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RegistryError(f"module {module_name!r} has no attribute {attr!r}") from None


def classic_builder(project: Path, ref: str) -> Callable[[], Any]:
    """``module:Class`` of a ``@CrewBase`` class under ``<project>/src`` (or the project)."""
    src = project / "src" if (project / "src").is_dir() else project
    crew_class = import_attr(ref, src)
    if not callable(getattr(crew_class, "crew", None)):
        raise RegistryError(f"{ref} is not a @CrewBase class (it has no crew() method)")
    return lambda: crew_class().crew()


def json_builder(project: Path) -> Callable[[], Any]:
    """A JSON project: ``crew.jsonc`` (or ``crew.json``) with ``agents/``. The builder
    returns crewai's ``(crew, default inputs)``."""
    from crewai.project.crew_loader import load_crew

    crew_file = next((p for p in (project / "crew.jsonc", project / "crew.json")
                      if p.is_file()), None)
    if crew_file is None:
        raise RegistryError(f"{project} has neither crew.jsonc nor crew.json")

    def build() -> Any:
        loaded = load_crew(crew_file)
        return loaded if isinstance(loaded, tuple) else (loaded, {})

    return build


def load_crew_agent(name: str, entry: dict[str, Any], base: Path, *, default: bool) -> CrewAgent:
    """A registry entry of framework ``crewai`` -> ``CrewAgent`` (built once to check it)."""
    if "project" not in entry:
        raise RegistryError("needs project = \"path/to/the/crew/project\"")
    project = (base / str(entry["project"])).resolve()
    if not project.is_dir():
        raise RegistryError(f"project directory {project} does not exist")
    own_llm = _llm_choice(entry)
    if "flow" in entry:
        if "crew" in entry:
            raise RegistryError("set one of crew = \"module:Class\" and flow = "
                                "\"module:Class\", not both")
        from agent_wrapper.agents.flows import load_flow_agent

        return load_flow_agent(name, entry, project, default=default, own_llm=own_llm)
    if "crew" in entry:
        classic = classic_builder(project, str(entry["crew"]))

        def make() -> tuple[Any, dict[str, Any]]:
            return classic(), {}

        source = f"{project} ({entry['crew']})"
    else:
        make = json_builder(project)
        source = str(project)
    try:
        crew, defaults = make()
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"building the crew failed: {type(exc).__name__}: {exc}") from exc
    if (why := refusal(crew, own_llm)) is not None:
        raise RegistryError(why)
    description = str(entry.get("description") or _doc_line(crew) or f"CrewAI crew {name}")
    return CrewAgent(name=name, framework="crewai", description=description, source=source,
                     default=default, own_llm=own_llm, tools=_tool_names(crew),
                     can_request_input=asks_for_human_input(crew),
                     build=lambda request, session, llm: make()[0],
                     placeholders=placeholders_of(crew), input_defaults=dict(defaults or {}))


def _llm_choice(entry: dict[str, Any]) -> bool:
    llm = entry.get("llm", "wrapper")
    if llm not in ("wrapper", "own"):
        raise RegistryError(f"llm must be \"wrapper\" or \"own\", not {llm!r}")
    return llm == "own"


def _doc_line(crew: Any) -> str:
    name = getattr(crew, "name", None)
    return "" if not name or name == "crew" else str(name)


# -- the built-in crew -----------------------------------------------------------------
def _history_prompt(session: Any) -> str:
    return "\n".join(
        f"- goal: {item.get('goal', '')!s} -> answer: {str(item.get('output', ''))[:300]}"
        for item in session.history[-HISTORY_IN_PROMPT:])


def build_builtin_crew(request: Any, session: Any, llm: Any) -> Any:
    """Researcher -> Writer, whose task texts carry goal, context, input_data and the
    session's last finished runs."""
    from crewai import Agent, Crew, Process, Task

    data = json.dumps(request.input_data, sort_keys=True, ensure_ascii=False)
    background = f"Additional context: {request.context or '(none)'}\nInput data (JSON): {data}"
    if history := _history_prompt(session):
        background += f"\nEarlier runs in this session:\n{history}"
    common = {"llm": llm, "function_calling_llm": llm, "allow_delegation": False,
              "planning": False, "reasoning": False, "memory": False, "verbose": False,
              "max_iter": 3, "max_retry_limit": 0}
    researcher = Agent(role="Researcher", goal="Find the facts a goal needs",
                       backstory="A careful analyst in an agent federation.", **common)
    writer = Agent(role="Writer", goal="Turn research notes into a final answer",
                   backstory="A precise technical writer.", **common)
    research = Task(name="research", agent=researcher,
                    description=f"Research the goal: {request.goal}\n{background}",
                    expected_output="Concise research notes with the key facts for the goal.")
    write = Task(name="write", agent=writer, context=[research],
                 description=f"Write the final answer for the goal: {request.goal}\n{background}",
                 expected_output="A clear final answer to the goal.")
    return Crew(agents=[researcher, writer], tasks=[research, write],
                process=Process.sequential, planning=False, memory=False, verbose=False)


def builtin_crew_agent() -> CrewAgent:
    return CrewAgent(name="crew", framework="crewai", default=True, builtin=True,
                     description="Built-in CrewAI crew: a Researcher, then a Writer, on the "
                                 "goal, context and input_data",
                     source="built-in", build=build_builtin_crew)
