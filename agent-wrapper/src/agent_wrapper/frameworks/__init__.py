"""One module per agent framework behind one small interface: ``FRAMEWORK`` (its name),
``ROUTE`` (the wrapper route that runs it), ``SPAN_NAME`` (the execution span) and
``run(agent, request, session, llm_factory, llm_bundle, control) -> ExecutionResult``.
``FRAMEWORKS`` holds the modules by name; the names alone are the contract's
(``contract.FRAMEWORK_NAMES``)."""

from types import ModuleType

from agent_wrapper.frameworks import crewai, langgraph

FRAMEWORKS: dict[str, ModuleType] = {crewai.FRAMEWORK: crewai, langgraph.FRAMEWORK: langgraph}

__all__ = ["FRAMEWORKS"]
