"""Runs any registered graph (the built-in one or a user's app) with the wrapper's
checkpointer, the configured model, step boundaries and human-in-the-loop interrupts.

``federation_session_id`` is the ``thread_id``; each agent of a session has its own
checkpoints (``store/langgraph_checkpointer.py``), stored after every super-step
(``durability="sync"``). The configured chat model reaches the graph as
``config["configurable"]["model"]`` (a LangChain chat model; the factory of a graph
given as one gets the same config), unless the registry entry says the graph brings
its own.

What a request does on a thread:

* ``resume`` given: the graph waits on an interrupt -> ``Command(resume=value)``
  continues it (the interrupted node restarts from its top); nothing waits -> 412.
* the graph waits on an interrupt and the request is the one that was interrupted:
  the same interrupt is answered again, nothing runs; another request -> 412.
* an unfinished run of the same request (a crash) -> resumed with ``stream(None)``,
  finished nodes are not redone.
* otherwise a new run on the same thread, which keeps the thread's message history.

Step boundaries and progress come from LangChain callbacks, so they work for any
graph: a node's start (and each LLM call) may stop the run before it calls the
model; each node's stored checkpoint ends a step; tool calls become ``tool_call``
events.
"""

import json
from typing import Annotated, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from opentelemetry import context as otel_context
from opentelemetry import trace
from typing_extensions import TypedDict

from agent_wrapper.agents.graphs import GraphAgent
from agent_wrapper.contract import RUN_GRAPH
from agent_wrapper.core.errors import InputRequired, NoPendingInterrupt
from agent_wrapper.llm import LLMBundle, LLMFactory
from agent_wrapper.llm import gateway as model_gateway
from agent_wrapper.runs.control import RunControl
from agent_wrapper.session import ExecutionResult, SessionRun, request_fingerprint
from agent_wrapper.store.langgraph_checkpointer import StoreCheckpointSaver

FRAMEWORK = "langgraph"
ROUTE = RUN_GRAPH
SPAN_NAME = "LangGraph_Execution"
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
TEXT_LIMIT = 2000


# -- the built-in graph ----------------------------------------------------------------
class GraphState(TypedDict, total=False):
    messages: Annotated[list[BaseMessage], add_messages]
    goal: str
    context: str
    input_data: dict
    plan: str
    answer: str


def build_builtin_graph() -> StateGraph:
    """``plan`` (LLM) then ``respond`` (LLM, sees the whole thread)."""

    def plan(state: GraphState, config: RunnableConfig) -> dict:
        data = json.dumps(state.get("input_data") or {}, sort_keys=True)
        request = (f"Goal: {state['goal']}\nContext: {state.get('context') or '(none)'}\n"
                   f"Input data (JSON): {data}")
        reply = config["configurable"]["model"].invoke([
            SystemMessage("You are the planner. Write a short numbered plan for the goal."),
            HumanMessage(request),
        ])
        return {"plan": str(reply.content)}

    def respond(state: GraphState, config: RunnableConfig) -> dict:
        reply = config["configurable"]["model"].invoke([
            SystemMessage("You are the responder. Answer the latest user request, "
                          "following the plan and the conversation so far."),
            *state.get("messages", []),
            HumanMessage(f"Plan: {state.get('plan', '')}\nGive the final answer."),
        ])
        text = str(reply.content)
        return {"answer": text, "messages": [AIMessage(text)]}

    builder = StateGraph(GraphState)
    builder.add_node("plan", plan)
    builder.add_node("respond", respond)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "respond")
    builder.add_edge("respond", END)
    return builder


# -- progress and step boundaries from callbacks --------------------------------------------
def _cut(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "…"


def _top_level_node(metadata: dict[str, Any] | None) -> str | None:
    """The graph node a callback belongs to (not a subgraph's)."""
    metadata = metadata or {}
    node = metadata.get("langgraph_node")
    if node is None or "|" in str(metadata.get("checkpoint_ns", "")):
        return None
    return str(node)


class GraphObserver(BaseCallbackHandler):
    """Turns a graph's callbacks into step boundaries and progress events."""

    raise_error = True  # a stop (cancel, deadline) raised at a boundary ends the run
    run_inline = True

    def __init__(self, control: RunControl) -> None:
        self.control = control
        self._prompts: dict[UUID, tuple[str | None, int]] = {}
        self._tools: dict[UUID, tuple[str, str | None, str | None, str]] = {}
        self._contexts: dict[UUID, object] = {}

    def _enter_step_span(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        """Make the span of the node calling a model current while the model runs, so
        the HTTP call a client makes (to the model gateway) is a child of the step.
        OpenInference records the node's span but never makes it current."""
        from openinference.instrumentation.langchain import LangChainInstrumentor

        span = LangChainInstrumentor().get_span(parent_run_id) if parent_run_id else None
        if span is not None:
            self._contexts[run_id] = otel_context.attach(trace.set_span_in_context(span))

    def _leave_step_span(self, run_id: UUID) -> None:
        token = self._contexts.pop(run_id, None)
        if token is not None:
            otel_context.detach(token)

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *,
                       run_id: UUID, metadata: dict[str, Any] | None = None,
                       **kwargs: Any) -> None:
        node = _top_level_node(metadata)
        if node is not None and kwargs.get("name") == node:
            self.control.step_started(node, node)

    def on_chat_model_start(self, serialized: dict[str, Any] | None,
                            messages: list[list[BaseMessage]], *, run_id: UUID,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        node = _top_level_node(metadata)
        chars = sum(len(str(m.content)) for batch in messages for m in batch)
        self._prompts[run_id] = (node, chars)
        self.control.before_llm_call(node)
        self._enter_step_span(run_id, kwargs.get("parent_run_id"))

    def on_llm_start(self, serialized: dict[str, Any] | None, prompts: list[str], *,
                     run_id: UUID, metadata: dict[str, Any] | None = None,
                     **kwargs: Any) -> None:
        node = _top_level_node(metadata)
        self._prompts[run_id] = (node, sum(len(p) for p in prompts))
        self.control.before_llm_call(node)
        self._enter_step_span(run_id, kwargs.get("parent_run_id"))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._prompts.pop(run_id, None)
        self._leave_step_span(run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave_step_span(run_id)
        node, prompt_chars = self._prompts.pop(run_id, (None, 0))
        generation = response.generations[0][0] if response.generations else None
        message = getattr(generation, "message", None)
        metadata = getattr(message, "response_metadata", None) or {}
        if metadata.get("system_fingerprint") == model_gateway.FINGERPRINT:
            return  # answered by the model gateway, which reported the call itself
        text = str(getattr(message, "content", None) or getattr(generation, "text", "") or "")
        usage = getattr(message, "usage_metadata", None)
        self.control.llm_finished(node, prompt_chars, len(text), usage)

    def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *,
                      run_id: UUID, metadata: dict[str, Any] | None = None,
                      **kwargs: Any) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        tool_input = kwargs.get("inputs") or input_str
        self._tools[run_id] = (name, _top_level_node(metadata), kwargs.get("tool_call_id"),
                               _cut(tool_input))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        name, node, call_id, tool_input = self._tools.pop(run_id, ("tool", None, None, ""))
        if call_id is None:
            call_id = getattr(output, "tool_call_id", None)
        content = getattr(output, "content", output)
        self.control.tool_called(name, node, call_id=call_id, tool_input=tool_input,
                                 output=_cut(content), step=node)


# -- running ---------------------------------------------------------------------------
def _node_output(values: Any) -> str:
    if isinstance(values, dict):
        messages = values.get("messages")
        if isinstance(messages, list) and messages:
            return _cut(getattr(messages[-1], "content", messages[-1]))
        texts = [v for v in values.values() if isinstance(v, str)]
        if len(texts) == 1:
            return _cut(texts[0])
    return _cut(values if values is not None else "")


def _final_output(values: dict[str, Any]) -> str:
    for key in ("answer", "output", "result"):
        if isinstance(values.get(key), str) and values[key]:
            return values[key]
    for message in reversed(values.get("messages") or []):
        if isinstance(message, AIMessage) and message.content:
            return str(message.content)
    return _cut({k: v for k, v in values.items() if k != "messages"})


def _terminal_nodes(graph: Any) -> set[str]:
    builder = getattr(graph, "builder", None)
    return {source for source, target in getattr(builder, "edges", set()) if target == END}


def _messages(values: dict[str, Any]) -> list[dict[str, str]] | None:
    messages = values.get("messages")
    if not isinstance(messages, list):
        return None
    return [{"role": _ROLES.get(getattr(m, "type", ""), getattr(m, "type", "user")),
             "content": str(getattr(m, "content", m))} for m in messages]


def run(agent: GraphAgent, request: Any, session: SessionRun, factory: LLMFactory,
        bundle: LLMBundle, control: RunControl | None = None) -> ExecutionResult:
    """Run, resume or answer ``agent``'s graph for ``request``; blocking."""
    control = control or RunControl.detached(session.session_id)
    if agent.own_llm:
        bundle.mark_own()
        control.model = bundle.model
    store_saver = session.store.langgraph_saver(session.lock)
    # The graph's own model clients (ChatOpenAI, init_chat_model) reach the model
    # gateway as this run's.
    with model_gateway.serving(agent, factory, bundle, control):
        if store_saver is None:
            # File and Redis stores: the thread's latest checkpoint lives in the session
            # document (one thread per agent there).
            return _run(agent, request, session, factory, bundle, control,
                        _document_saver(session, agent), session.session_id)
        # SQL stores: LangGraph's own saver on the same database keeps the whole history.
        with store_saver as saver:
            return _run(agent, request, session, factory, bundle, control, saver,
                        thread_id(session.session_id, agent))


def thread_id(session_id: str, agent: GraphAgent) -> str:
    """The LangGraph thread of an agent in a session (``#`` is not in the id alphabet)."""
    return session_id if agent.builtin else f"{session_id}#{agent.name}"


def _document_saver(session: SessionRun, agent: GraphAgent) -> StoreCheckpointSaver:
    state = session.agent_state(agent.name)

    def persist(exported: dict) -> None:
        state["threads"] = exported
        session.save()

    saver = StoreCheckpointSaver(session.session_id, state.get("threads"), persist)
    saver.prune()
    return saver


def _run(agent: GraphAgent, request: Any, session: SessionRun, factory: LLMFactory,
         bundle: LLMBundle, control: RunControl, saver: Any, thread: str) -> ExecutionResult:
    state = session.agent_state(agent.name)
    configurable: dict[str, Any] = {"thread_id": thread}
    if not agent.own_llm:
        configurable["model"] = factory.chat_model(bundle)
    config: RunnableConfig = {"configurable": configurable,
                              "callbacks": [GraphObserver(control)]}
    assert agent.make is not None
    graph = agent.make(config).copy(update={"checkpointer": saver})
    fingerprint = request_fingerprint(FRAMEWORK, request.goal, request.context,
                                      request.input_data, None if agent.builtin else agent.name)

    snapshot = graph.get_state(config)
    waiting = list(snapshot.interrupts) if snapshot.next else []
    run_info = state.get("run") or {}
    graph_input: Any
    if "resume" in request.model_fields_set:
        if not waiting:
            raise NoPendingInterrupt(f"session {session.session_id!r} has no run of agent "
                                     f"{agent.name!r} waiting for input; send the request "
                                     "without resume")
        graph_input = Command(resume=request.resume)
    elif waiting:
        if run_info.get("fingerprint") != fingerprint:
            raise InputRequired(f"agent {agent.name!r} of session {session.session_id!r} "
                                "waits for input: answer with resume first")
        # The request that was interrupted, again: the same question, nothing runs.
        return _result(snapshot, run_info, resumed_steps=len(run_info.get("steps", [])))
    elif snapshot.next and run_info.get("fingerprint") == fingerprint:
        graph_input = None  # an unfinished run of this request: finished nodes stay done
    else:
        graph_input = agent.graph_input(request.goal, request.context, request.input_data)
        run_info = {"fingerprint": fingerprint, "steps": []}
    state["run"] = run_info
    already_done = len(run_info["steps"])
    for step in run_info["steps"]:
        control.step_resumed(step["name"], step.get("agent"), step["output"])

    terminal = _terminal_nodes(graph)
    for update in graph.stream(graph_input, config, stream_mode="updates", durability="sync"):
        for node, values in update.items():
            if node.startswith("__"):
                continue  # __interrupt__: read from the final state below
            # The node's writes are stored (durability="sync"); the step list joins them,
            # and that is a step boundary.
            output = _node_output(values)
            run_info["steps"].append({"name": node, "agent": node, "output": output})
            session.save()
            session.step_checkpointed()
            control.step_finished(node, node, output, _latest_checkpoint(saver, config),
                                  last=node in terminal)

    final = graph.get_state(config)
    result = _result(final, run_info, resumed_steps=already_done)
    if result.status == "completed":
        state["run"] = None
    state["last_checkpoint"] = result.checkpoint
    return result


def _latest_checkpoint(saver: Any, config: RunnableConfig) -> str | None:
    latest = saver.get_tuple({"configurable": {"thread_id": config["configurable"]["thread_id"]}})
    return None if latest is None else latest.config["configurable"].get("checkpoint_id")


def _result(snapshot: Any, run_info: dict[str, Any], *, resumed_steps: int) -> ExecutionResult:
    values = snapshot.values or {}
    steps = [dict(step, resumed_from_checkpoint=index < resumed_steps)
             for index, step in enumerate(run_info.get("steps", []))]
    checkpoint = snapshot.config["configurable"].get("checkpoint_id")
    interrupts = list(snapshot.interrupts) if snapshot.next else []
    if interrupts:
        last_ai = next((str(m.content) for m in reversed(values.get("messages") or [])
                        if isinstance(m, AIMessage) and m.content), "")
        return ExecutionResult(output=last_ai, steps=steps, checkpoint=checkpoint,
                               messages=_messages(values), status="input_required",
                               interrupt=interrupts[0].value)
    return ExecutionResult(output=_final_output(values), steps=steps, checkpoint=checkpoint,
                           messages=_messages(values))
