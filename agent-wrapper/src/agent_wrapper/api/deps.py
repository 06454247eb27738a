"""FastAPI dependencies: the wrapper's shared state, reached by routes as parameters
instead of ``request.app.state`` lookups."""

from typing import Annotated

from fastapi import Depends, Request

from agent_wrapper.agents import AgentRegistry
from agent_wrapper.runs import RunManager, RunRecords


def wrapper_state(request: Request):  # -> main.WrapperState (imported lazily: no cycle)
    return request.app.state.wrapper


def agent_registry(request: Request) -> AgentRegistry:
    return request.app.state.wrapper.agents


def run_manager(request: Request) -> RunManager:
    return request.app.state.wrapper.runs


def run_records(request: Request) -> RunRecords:
    return request.app.state.wrapper.records


Registry = Annotated[AgentRegistry, Depends(agent_registry)]
Manager = Annotated[RunManager, Depends(run_manager)]
Records = Annotated[RunRecords, Depends(run_records)]
