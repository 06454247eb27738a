"""The agent registry: the built-in crew and graph plus the user's projects, loaded at
start from one TOML file (``AGENT_WRAPPER_AGENTS_FILE``)::

    [agents.word_crew]                  # the agent's name, as callers send it
    framework = "crewai"
    project = "crews/word_crew"         # the directory `crewai create crew` made
    crew = "word_crew.crew:WordCrew"    # classic layout only (module under src/)
    # flow = "my_flow.main:MyFlow"      # a CrewAI Flow instead of a crew
    description = "..."                 # optional
    llm = "wrapper"                     # or "own": the project brings its model

    [agents.approval]
    framework = "langgraph"
    config = "graphs/langgraph.json"
    graph = "approval"                  # key in "graphs" (default: the agent's name)

Paths are relative to the TOML file. A broken entry fails the start with a message
naming the entry and the cause. ``default = true`` makes an entry its framework's
default agent instead of the built-in one.
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_wrapper.agents.base import NAME_RE, RegisteredAgent
from agent_wrapper.agents.crews import builtin_crew_agent, load_crew_agent
from agent_wrapper.agents.graphs import builtin_graph_agent, load_graph_agent
from agent_wrapper.contract import FRAMEWORK_NAMES
from agent_wrapper.core.errors import AgentNotFound, RegistryError

_KEYS = {"crewai": {"framework", "project", "crew", "flow", "description", "llm", "default"},
         "langgraph": {"framework", "config", "graph", "description", "llm", "default"}}


@dataclass
class AgentRegistry:
    agents: dict[str, RegisteredAgent] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)  # framework -> agent name

    def add(self, agent: RegisteredAgent) -> None:
        self.agents[agent.name] = agent
        if agent.default:
            previous = self.defaults.get(agent.framework)
            if previous is not None and previous != agent.name:
                self.agents[previous].default = False
            self.defaults[agent.framework] = agent.name

    def resolve(self, framework: str, name: str | None) -> RegisteredAgent:
        """The agent a request names (empty: the framework's default), or 404."""
        agent = self.agents.get(name) if name else self.agents.get(self.defaults[framework])
        if agent is None or agent.framework != framework:
            known = ", ".join(sorted(a.name for a in self.agents.values()
                                     if a.framework == framework))
            other = ""
            if agent is not None:
                other = f" ({name!r} is a {agent.framework} agent)"
            raise AgentNotFound(f"no {framework} agent {name!r}{other}; the {framework} "
                                f"agents are: {known}")
        return agent

    def listing(self, framework: str | None = None) -> list[dict[str, Any]]:
        return [agent.describe() for agent in self.agents.values()
                if framework is None or agent.framework == framework]


def builtin_registry() -> AgentRegistry:
    from agent_wrapper.frameworks.langgraph import build_builtin_graph

    registry = AgentRegistry()
    registry.add(builtin_crew_agent())
    registry.add(builtin_graph_agent(build_builtin_graph))
    return registry


def load_registry(path: Path | None) -> AgentRegistry:
    """The built-in agents plus the entries of ``path`` (None: built-ins only)."""
    registry = builtin_registry()
    if path is None:
        return registry
    try:
        document = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RegistryError(f"agent registry {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"agent registry {path} is not valid TOML: {exc}") from exc
    entries = document.get("agents", {})
    if not isinstance(entries, dict):
        raise RegistryError(f"agent registry {path}: [agents] must be a table of agents")
    base = Path(path).resolve().parent
    for name, entry in entries.items():
        try:
            registry.add(_load_entry(name, entry, base, registry))
        except RegistryError as exc:
            raise RegistryError(f"agent registry {path}: agent {name!r}: {exc}") from exc
    return registry


def _load_entry(name: str, entry: Any, base: Path, registry: AgentRegistry) -> RegisteredAgent:
    if not NAME_RE.fullmatch(name):
        raise RegistryError("names are 1..64 of [A-Za-z0-9_.-], starting with a letter or digit")
    if name in registry.agents:
        raise RegistryError("the name is taken (by a built-in agent or an earlier entry)")
    if not isinstance(entry, dict):
        raise RegistryError("must be a table")
    framework = entry.get("framework")
    if framework not in FRAMEWORK_NAMES:
        raise RegistryError(f"framework must be one of {', '.join(FRAMEWORK_NAMES)}, "
                            f"not {framework!r}")
    unknown = set(entry) - _KEYS[framework]
    if unknown:
        raise RegistryError(f"unknown keys for a {framework} agent: {', '.join(sorted(unknown))}")
    default = entry.get("default", False) is True
    if framework == "crewai":
        return load_crew_agent(name, entry, base, default=default)
    return load_graph_agent(name, entry, base, default=default)
