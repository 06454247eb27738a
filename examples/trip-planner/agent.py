"""trip_planner: looks up the weather with a tool, proposes a plan, and asks a person
to approve the budget (an interrupt) before it books.

The model comes from ``config["configurable"]["model"]``: agent-federation's wrapper
puts its configured model there (use any LangChain chat model when you run it
elsewhere).
"""

from typing import Annotated, NotRequired

from langchain_core.messages import AIMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt
from typing_extensions import TypedDict


@tool
def weather(city: str) -> str:
    """Returns the weather forecast for a city."""
    return f"Forecast for {city}: mild, 18 C, light wind."


class TripState(TypedDict):
    messages: Annotated[list, add_messages]
    city: str
    budget: int
    approved: NotRequired[bool]


class TripInput(TypedDict):
    """What a caller must send (LangGraph treats state keys as optional input)."""

    messages: Annotated[list, add_messages]
    city: str
    budget: int


def plan(state: TripState, config: RunnableConfig) -> dict:
    model = config["configurable"]["model"].bind_tools([weather])
    prompt = SystemMessage(f"You plan trips to {state['city']} within {state['budget']} EUR. "
                           "Check the weather first.")
    return {"messages": [model.invoke([prompt, *state["messages"]])]}


def confirm(state: TripState) -> dict:
    answer = interrupt({"question": f"Book the trip to {state['city']} for "
                                    f"{state['budget']} EUR?", "budget": state["budget"]})
    approved = bool(answer.get("approved")) if isinstance(answer, dict) else bool(answer)
    text = (f"Booked: {state['city']} within {state['budget']} EUR." if approved
            else f"Not booked: the trip to {state['city']} was declined.")
    return {"approved": approved, "messages": [AIMessage(text)]}


builder = StateGraph(TripState, input_schema=TripInput)
builder.add_node("plan", plan)
builder.add_node("tools", ToolNode([weather]))
builder.add_node("confirm", confirm)
builder.add_edge(START, "plan")
builder.add_conditional_edges("plan", tools_condition, {"tools": "tools", END: "confirm"})
builder.add_edge("tools", "plan")
builder.add_edge("confirm", END)
graph = builder.compile()
