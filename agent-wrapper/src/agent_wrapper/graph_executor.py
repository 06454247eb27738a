"""Runs the real LangGraph ``StateGraph`` (plan -> respond) with per-node checkpoints.

``federation_session_id`` is the LangGraph ``thread_id``; the checkpointer
stores every node's result in the session document (see
``store/langgraph_checkpointer.py``). A request that finds an unfinished run of
the same request resumes it with ``invoke(None)``, so finished nodes are not
redone; any other request starts a new run on the same thread, which keeps the
thread's message history.

Step boundaries (``runs.control.RunControl``): each node reports its start (and
may be stopped there, before its LLM call), and the stream loop reports each
node's stored checkpoint between nodes, where a stop ends the run.
"""

import json
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from agent_wrapper.llm import LLMBundle, LLMFactory
from agent_wrapper.runs.control import RunControl
from agent_wrapper.session import ExecutionResult, SessionRun, request_fingerprint
from agent_wrapper.store.langgraph_checkpointer import StoreCheckpointSaver

FRAMEWORK = "langgraph"
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _run_steps(current: list | None, update: list | None) -> list:
    # ``None`` starts a new run's step list; anything else appends.
    if update is None:
        return []
    return [*(current or []), *update]


class GraphState(TypedDict, total=False):
    messages: Annotated[list[BaseMessage], add_messages]
    goal: str
    context: str
    input_data: dict
    fingerprint: str
    plan: str
    answer: str
    run_steps: Annotated[list, _run_steps]


AGENTS = {"plan": "planner", "respond": "responder"}
LAST_NODE = "respond"


def build_graph(chat_model: Any, control: RunControl | None = None) -> StateGraph:
    """The graph: ``plan`` (LLM) then ``respond`` (LLM, sees the whole thread)."""
    control = control or RunControl.detached()

    def call_model(node: str, messages: list[BaseMessage]) -> str:
        # The node's start is a step boundary: a stop raised here ends the run
        # before this node's LLM call.
        control.step_started(node, AGENTS[node])
        reply = chat_model.invoke(messages)
        text = str(reply.content)
        control.llm_finished(AGENTS[node], sum(len(str(m.content)) for m in messages),
                             len(text), getattr(reply, "usage_metadata", None))
        return text

    def plan(state: GraphState) -> dict:
        data = json.dumps(state.get("input_data") or {}, sort_keys=True)
        request = (f"Goal: {state['goal']}\nContext: {state.get('context') or '(none)'}\n"
                   f"Input data (JSON): {data}")
        text = call_model("plan", [
            SystemMessage("You are the planner. Write a short numbered plan for the goal."),
            HumanMessage(request),
        ])
        return {"plan": text,
                "run_steps": [{"name": "plan", "agent": "planner", "output": text}]}

    def respond(state: GraphState) -> dict:
        text = call_model("respond", [
            SystemMessage("You are the responder. Answer the latest user request, "
                          "following the plan and the conversation so far."),
            *state.get("messages", []),
            HumanMessage(f"Plan: {state.get('plan', '')}\nGive the final answer."),
        ])
        return {"answer": text, "messages": [AIMessage(text)],
                "run_steps": [{"name": "respond", "agent": "responder", "output": text}]}

    builder = StateGraph(GraphState)
    builder.add_node("plan", plan)
    builder.add_node("respond", respond)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "respond")
    builder.add_edge("respond", END)
    return builder


def run_graph(request: Any, session: SessionRun, factory: LLMFactory, bundle: LLMBundle,
              control: RunControl | None = None) -> ExecutionResult:
    """Run (or resume) the graph for ``request``; blocking, call from a worker thread."""
    control = control or RunControl.detached(session.session_id)
    graph_state = session.document["graph"]

    def persist(exported: dict) -> None:
        graph_state["threads"] = exported
        session.save()

    saver = StoreCheckpointSaver(session.session_id, graph_state.get("threads"), persist)
    saver.prune()
    graph = build_graph(factory.chat_model(bundle), control).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": session.session_id}}
    fingerprint = request_fingerprint(FRAMEWORK, request.goal, request.context,
                                      request.input_data)

    snapshot = graph.get_state(config)
    resuming = bool(snapshot.next) and snapshot.values.get("fingerprint") == fingerprint
    already_done = len(snapshot.values.get("run_steps") or []) if resuming else 0
    for step in (snapshot.values.get("run_steps") or [])[:already_done]:
        control.step_resumed(step["name"], step.get("agent"), step["output"])
    graph_input: dict | None = None
    if not resuming:
        human = request.goal if not request.context else f"{request.goal}\n\n{request.context}"
        graph_input = {"messages": [HumanMessage(human)], "goal": request.goal,
                       "context": request.context, "input_data": request.input_data,
                       "fingerprint": fingerprint, "plan": "", "answer": "", "run_steps": None}

    # durability="sync": each node's checkpoint is stored before the next node runs.
    for update in graph.stream(graph_input, config, stream_mode="updates", durability="sync"):
        for node, values in update.items():
            if node not in AGENTS:
                continue
            # The node's writes are stored (durability="sync"): a step boundary.
            session.step_checkpointed()
            outputs = (values or {}).get("run_steps") or [{}]
            control.step_finished(node, AGENTS[node], str(outputs[-1].get("output", "")),
                                  saver.latest_checkpoint_id(), last=node == LAST_NODE)

    final = graph.get_state(config)
    values = final.values
    steps = [dict(step, resumed_from_checkpoint=index < already_done)
             for index, step in enumerate(values.get("run_steps") or [])]
    graph_state["last_checkpoint"] = final.config["configurable"].get("checkpoint_id")
    messages = [{"role": _ROLES.get(m.type, m.type), "content": str(m.content)}
                for m in values.get("messages", [])]
    return ExecutionResult(output=str(values.get("answer", "")), steps=steps,
                           checkpoint=graph_state["last_checkpoint"], messages=messages)
