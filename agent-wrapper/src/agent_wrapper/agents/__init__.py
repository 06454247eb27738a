"""The agents the wrapper can run: the built-in crew and graph, and the user's own crew
projects and LangGraph apps listed in the registry file (``registry.py``)."""

from agent_wrapper.agents.base import RegisteredAgent
from agent_wrapper.agents.crews import CrewAgent
from agent_wrapper.agents.graphs import GraphAgent
from agent_wrapper.agents.registry import AgentRegistry, load_registry

__all__ = ["AgentRegistry", "CrewAgent", "GraphAgent", "RegisteredAgent", "load_registry"]
