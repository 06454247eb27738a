"""The agents the wrapper can run: the built-in crew and graph, and the user's own crew
projects, CrewAI flows and LangGraph apps listed in the registry file (``registry.py``)."""

from agent_wrapper.agents.base import RegisteredAgent
from agent_wrapper.agents.crews import CrewAgent
from agent_wrapper.agents.flows import FlowAgent
from agent_wrapper.agents.graphs import GraphAgent
from agent_wrapper.agents.registry import AgentRegistry, load_registry

__all__ = ["AgentRegistry", "CrewAgent", "FlowAgent", "GraphAgent", "RegisteredAgent",
           "load_registry"]
