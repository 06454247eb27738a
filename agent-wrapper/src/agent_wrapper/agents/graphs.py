"""LangGraph agents: graphs from a ``langgraph.json`` as LangGraph's own tooling reads it,
and the built-in graph (plan -> respond).

``"graphs": {"name": "./path/file.py:attr"}`` (or ``"module.path:attr"``), where
``attr`` is a compiled graph, a ``StateGraph`` or a factory (called with the run's
config when it takes an argument, as LangGraph's server does). The input is what
LangGraph itself accepts: every state key is optional (a graph fills the rest itself)
unless the graph says otherwise, i.e. a pydantic state (LangGraph validates it) or an
explicit ``input_schema`` whose keys are required; the types are always checked.
``dependencies``
entries that are local paths go on ``sys.path``; ``env`` (a dict, or a ``.env`` file)
fills environment variables that are not set yet. The wrapper supplies the
checkpointer: a graph compiled with its own is recompiled with the wrapper's.
"""

import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent_wrapper.agents.base import RegisteredAgent, invalid
from agent_wrapper.core.errors import RegistryError

GraphFactory = Callable[[dict[str, Any]], Any]  # run config -> compiled graph (no checkpointer)


@dataclass
class GraphAgent(RegisteredAgent):
    """A graph: ``make(config)`` returns it compiled (``compile_with`` adds our saver)."""

    make: GraphFactory | None = None
    input_model: Any = None  # pydantic model of the graph's input, when LangGraph has one
    input_json_schema: dict[str, Any] | None = None
    input_keys: tuple[str, ...] = ()
    # The keys a caller must send (see the module doc); the rest are optional.
    required_keys: frozenset[str] = frozenset()
    builtin: bool = False

    def input_schema(self) -> dict[str, Any]:
        return self.input_json_schema or {"type": "object"}

    def graph_input(self, goal: str, context: str, input_data: dict[str, Any]) -> dict[str, Any]:
        """The graph's input: ``input_data``, plus the goal as the first human message
        (``messages``) and ``goal``/``context`` where the state has such keys."""
        from langchain_core.messages import HumanMessage

        text = goal if not context else f"{goal}\n\n{context}"
        if self.builtin:
            return {"messages": [HumanMessage(text)], "goal": goal, "context": context,
                    "input_data": input_data, "plan": "", "answer": ""}
        values = dict(input_data)
        if "messages" in self.input_keys and "messages" not in values:
            values["messages"] = [HumanMessage(text)]
        for key, value in (("goal", goal), ("context", context)):
            if key in self.input_keys and key not in values:
                values[key] = value
        return values

    def check_input(self, input_data: dict[str, Any], goal: str, context: str) -> None:
        if self.builtin or self.input_model is None:
            return
        from pydantic import ValidationError

        try:
            self.input_model.model_validate(self.graph_input(goal, context, input_data))
        except ValidationError as exc:
            problems = [error for error in exc.errors() if not self._optional_missing(error)]
            if not problems:
                return
            first = problems[0]
            path = ".".join(str(part) for part in first.get("loc", ())) or "(root)"
            problem = "is required" if first.get("type") == "missing" else str(first["msg"])
            raise invalid(self.name, path, problem) from None

    def _optional_missing(self, error: Any) -> bool:
        """A state key left out that the graph does not require (LangGraph's semantics)."""
        loc = error.get("loc", ())
        return (error.get("type") == "missing" and len(loc) == 1
                and str(loc[0]) not in self.required_keys)


# -- loading -------------------------------------------------------------------------
def _load_env(spec: Any, base: Path) -> None:
    if isinstance(spec, dict):
        pairs = {str(k): str(v) for k, v in spec.items()}
    elif isinstance(spec, str):
        path = (base / spec).resolve()
        if not path.is_file():
            raise RegistryError(f"env file {path} does not exist")
        pairs = {}
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                pairs[key.strip()] = value.strip().strip("'\"")
    else:
        raise RegistryError("env must be an object or the path of a .env file")
    for key, value in pairs.items():
        os.environ.setdefault(key, value)


def _import_target(target: str, base: Path, graph_name: str) -> Any:
    location, sep, attr = target.rpartition(":")
    if not sep or not location or not attr:
        raise RegistryError(f"graph {graph_name!r}: {target!r} must be 'path/file.py:attr' "
                            "or 'module:attr'")
    if location.endswith(".py") or "/" in location:
        path = (base / location).resolve()
        if not path.is_file():
            raise RegistryError(f"graph {graph_name!r}: file {path} does not exist")
        module_name = f"agent_wrapper_user_graphs.{graph_name}_{abs(hash(path)):x}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise RegistryError(f"graph {graph_name!r}: importing {path} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(location)
        except Exception as exc:
            raise RegistryError(f"graph {graph_name!r}: cannot import {location!r}: "
                                f"{type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise RegistryError(f"graph {graph_name!r}: {location} has no attribute {attr!r}")
    return getattr(module, attr)


def as_factory(value: Any, graph_name: str) -> GraphFactory:
    """A compiled graph, a ``StateGraph`` or a factory -> ``config -> compiled graph``."""
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    if isinstance(value, Pregel):
        return lambda config: value
    if isinstance(value, StateGraph):
        compiled = value.compile()
        return lambda config: compiled
    if callable(value):
        takes_config = bool(inspect.signature(value).parameters)

        def make(config: dict[str, Any]) -> Any:
            graph = value(config) if takes_config else value()
            if isinstance(graph, StateGraph):
                graph = graph.compile()
            if not isinstance(graph, Pregel):
                raise RegistryError(f"graph {graph_name!r}: the factory returned a "
                                    f"{type(graph).__name__}, not a graph")
            return graph

        return make
    raise RegistryError(f"graph {graph_name!r} is a {type(value).__name__}, not a compiled "
                        "graph, a StateGraph or a factory")


def _input_keys(graph: Any) -> tuple[str, ...]:
    channels = getattr(graph, "input_channels", None)
    if isinstance(channels, str):
        return (channels,)
    if channels:
        return tuple(str(c) for c in channels if not str(c).startswith("__"))
    builder = getattr(graph, "builder", None)
    schema = getattr(builder, "input_schema", None) or getattr(builder, "state_schema", None)
    try:
        return tuple(typing.get_type_hints(schema)) if schema else ()
    except Exception:
        return ()


# The wrapper fills these from the task's goal and context when input_data leaves
# them out, so the caller never has to send them.
FILLED_FROM_TASK = frozenset({"messages", "goal", "context"})


def required_input_keys(graph: Any) -> frozenset[str]:
    """The input keys a caller must send, as LangGraph treats them: none for a
    ``TypedDict`` state (LangGraph's server accepts any subset of its keys), the
    required fields of a pydantic or dataclass state (LangGraph validates those on
    input), the required keys of an explicit ``input_schema``."""
    builder = getattr(graph, "builder", None)
    state = getattr(builder, "state_schema", None)
    schema = getattr(builder, "input_schema", None) or state
    if schema is None:
        return frozenset()
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        keys = {name for name, info in schema.model_fields.items() if info.is_required()}
    elif dataclasses.is_dataclass(schema):
        keys = {f.name for f in dataclasses.fields(schema)
                if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}
    elif schema is not state:
        keys = set(getattr(schema, "__required_keys__", ()))
    else:
        return frozenset()
    return frozenset(keys - FILLED_FROM_TASK)


def _input_model(graph: Any, required: frozenset[str]) -> tuple[Any, dict[str, Any] | None]:
    """LangGraph's pydantic input model and its JSON Schema, with ``required`` as the
    schema's required keys. A ``typing.TypedDict`` state on Python < 3.12 has no
    pydantic model: then only the keys are known."""
    try:
        schema = graph.get_input_jsonschema()
        schema["required"] = [key for key in schema.get("properties", {}) if key in required]
        return graph.get_input_schema(), schema
    except Exception:
        keys = _input_keys(graph)
        return None, {"type": "object", "properties": {key: {} for key in keys},
                      "required": sorted(required)}


def _has_interrupt(graph: Any) -> bool:
    """Whether the graph may ask for input: a node calls ``interrupt`` or the graph is
    compiled with ``interrupt_before``/``interrupt_after``."""
    if getattr(graph, "interrupt_before_nodes", None) or getattr(graph, "interrupt_after_nodes",
                                                                  None):
        return True
    builder = getattr(graph, "builder", None)
    for spec in (getattr(builder, "nodes", None) or {}).values():
        runnable = getattr(spec, "runnable", None)
        func = getattr(runnable, "func", None) or getattr(runnable, "afunc", None)
        try:
            if func is not None and "interrupt(" in inspect.getsource(func):
                return True
        except (OSError, TypeError):
            continue
    return False


def _tool_names(graph: Any) -> list[str]:
    names: list[str] = []
    builder = getattr(graph, "builder", None)
    for spec in (getattr(builder, "nodes", None) or {}).values():
        by_name = getattr(getattr(spec, "runnable", None), "tools_by_name", None)
        if by_name:
            names += [str(name) for name in by_name]
    return names


def load_langgraph_config(config_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise RegistryError(f"{config_path} does not exist") from None
    except ValueError as exc:
        raise RegistryError(f"{config_path} is not JSON: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("graphs"), dict):
        raise RegistryError(f"{config_path} has no \"graphs\" object")
    base = config_path.parent
    for dependency in config.get("dependencies") or []:
        path = (base / str(dependency)).resolve()
        if str(dependency).startswith((".", "/")) and path.is_dir():
            sys.path.insert(0, str(path))
    if "env" in config:
        _load_env(config["env"], base)
    return config


def load_graph_agent(name: str, entry: dict[str, Any], base: Path, *,
                     default: bool) -> GraphAgent:
    """A registry entry of framework ``langgraph`` -> ``GraphAgent`` (made once to check it)."""
    if "config" not in entry:
        raise RegistryError("needs config = \"path/to/langgraph.json\"")
    config_path = (base / str(entry["config"])).resolve()
    config = load_langgraph_config(config_path)
    graph_name = str(entry.get("graph", name))
    if graph_name not in config["graphs"]:
        raise RegistryError(f"{config_path} has no graph {graph_name!r} (it has: "
                            f"{', '.join(sorted(config['graphs'])) or 'none'})")
    target = config["graphs"][graph_name]
    if isinstance(target, dict):  # {"path": "...", "description": "..."} form
        entry = {"description": target.get("description"), **entry}
        target = target.get("path", "")
    make = as_factory(_import_target(str(target), config_path.parent, graph_name), graph_name)
    try:
        graph = make({"configurable": {}})
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"graph {graph_name!r}: the factory failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    required = required_input_keys(graph)
    model, schema = _input_model(graph, required)
    keys = tuple((schema or {}).get("properties") or ()) or _input_keys(graph)
    own_llm = entry.get("llm", "wrapper")
    if own_llm not in ("wrapper", "own"):
        raise RegistryError(f"llm must be \"wrapper\" or \"own\", not {own_llm!r}")
    description = str(entry.get("description")
                      or f"LangGraph graph {graph_name} ({config_path.name})")
    return GraphAgent(name=name, framework="langgraph", description=description,
                      source=f"{config_path}#{graph_name}", default=default,
                      own_llm=own_llm == "own", tools=_tool_names(graph),
                      can_request_input=_has_interrupt(graph), make=make, input_model=model,
                      input_json_schema=schema, input_keys=keys, required_keys=required)


def builtin_graph_agent(build: Callable[[], Any]) -> GraphAgent:
    """The built-in graph; ``build()`` returns its (uncompiled) ``StateGraph``."""
    compiled = build().compile()
    return GraphAgent(
        name="graph", framework="langgraph", default=True, builtin=True,
        description="Built-in LangGraph graph: plan, then respond, on the goal and the "
                    "session's conversation",
        source="built-in", make=lambda config: compiled,
        input_json_schema={"type": "object", "description": "Any JSON object; the graph "
                           "sees it beside the goal and context.",
                           "additionalProperties": True})
