"""Runs any registered crew (the built-in one or a user's project) with per-task
checkpoints, the configured LLM, and step boundaries.

After each task the task callback stores the task's output as a checkpoint of the
unfinished run before the next task starts. A request that finds an unfinished run of
the same request (same agent, goal, context, input_data) resumes it the way crewai
resumes its own checkpoints: the finished tasks get their stored ``TaskOutput`` and
``checkpoint_kickoff_event_id`` is set, so ``kickoff`` skips them and hands their
outputs to the remaining tasks as context. No finished task is redone.

Unless the registry entry says the crew brings its own model, every agent of the crew
gets the configured LLM (``llm`` and ``function_calling_llm``) after it is built: an
``Agent`` built without one silently holds an OpenAI client.

Step boundaries (``runs.control.RunControl``) use crewai's execution-scoped
interception hooks: ``PRE_STEP`` before each task, ``PRE_MODEL_CALL`` before each
LLM call (crewai 1.15 does not call ``step_callback`` for a text-mode final answer,
so the hook is the reliable per-step seam), ``POST_TOOL_CALL`` after each tool call,
plus the task callback after each task's checkpoint. A stop (cancel, deadline) raised
there becomes ``HookAborted``, the one exception crewai's hook dispatcher lets through,
and ends ``kickoff`` before the next LLM call.

crewai's own kickoff log (``latest_kickoff_task_outputs.db``, for ``crewai replay``) is
off: it is one SQLite file per storage directory that every kickoff empties and every
task reads whole and appends to, so concurrent crews (and worker processes) overwrite
each other's entries and queue on its write lock; it cost ~6 ms and three fsyncs per
two-task crew. The session's checkpoints above are what resumes a crew here.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from crewai.core.providers.human_input import reset_provider, set_provider
from crewai.events.event_bus import crewai_event_bus
from crewai.hooks.dispatch import HookAborted, InterceptionPoint, register_scoped, scoped_hooks
from crewai.tasks.task_output import TaskOutput

from agent_wrapper.agents.crews import CrewAgent
from agent_wrapper.agents.flows import FlowAgent
from agent_wrapper.contract import RUN_CREW
from agent_wrapper.core.errors import InputRequired, NoPendingInterrupt, WrapperError
from agent_wrapper.frameworks import crewai_human_input as human_input
from agent_wrapper.llm import LLMBundle, LLMFactory
from agent_wrapper.llm import gateway as model_gateway
from agent_wrapper.runs.control import RunControl
from agent_wrapper.session import ExecutionResult, SessionRun, request_fingerprint

FRAMEWORK = "crewai"
ROUTE = RUN_CREW
SPAN_NAME = "CrewAI_Execution"
# Tool inputs/outputs carried in a progress event are cut to this many characters.
TOOL_TEXT_LIMIT = 2000


def _role(ctx: Any) -> str | None:
    agent = getattr(ctx, "agent", None)
    role = getattr(agent, "role", None) or getattr(ctx, "agent_role", None)
    return role.strip() if isinstance(role, str) else role


def _chars(messages: Any) -> int:
    if isinstance(messages, str):
        return len(messages)
    total = 0
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else message
        total += len(str(content or ""))
    return total


def text_of(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= TOOL_TEXT_LIMIT else text[:TOOL_TEXT_LIMIT] + "…"


def aborting(check: Callable[[], None]) -> None:
    """Run a boundary check; a stop becomes ``HookAborted`` (crewai swallows others)."""
    try:
        check()
    except WrapperError as exc:
        raise HookAborted(exc.message, source="agent-wrapper") from exc


def register_hooks(control: RunControl, *, tasks_are_steps: bool = True,
                   configured_llm: Any = None) -> None:
    """Step-boundary hooks for the current ``scoped_hooks()`` context (a flow's steps
    are its methods, not the tasks of the crews it runs: ``tasks_are_steps=False``).
    With the platform's model (``configured_llm``), a call by an LLM the code built
    itself went through the model gateway, which reports it: not counted twice."""

    def before_step(ctx: Any) -> None:
        if tasks_are_steps and getattr(ctx, "kind", None) == "task":
            aborting(lambda: control.step_started(str(ctx.step_name), _role(ctx)))

    def before_llm(ctx: Any) -> None:
        aborting(lambda: control.before_llm_call(_role(ctx)))

    def after_llm(ctx: Any) -> None:
        if configured_llm is not None and getattr(ctx, "llm", None) is not configured_llm:
            return
        control.llm_finished(_role(ctx), _chars(getattr(ctx, "messages", None)),
                             len(str(getattr(ctx, "response", "") or "")))

    def after_tool(ctx: Any) -> None:
        control.tool_called(str(getattr(ctx, "tool_name", "tool")), _role(ctx),
                            call_id=getattr(ctx, "tool_call_id", None),
                            tool_input=text_of(getattr(ctx, "tool_input", None) or {}),
                            output=text_of(getattr(ctx, "tool_result", "") or ""))

    register_scoped(InterceptionPoint.PRE_STEP, before_step)
    register_scoped(InterceptionPoint.PRE_MODEL_CALL, before_llm)
    register_scoped(InterceptionPoint.POST_MODEL_CALL, after_llm)
    register_scoped(InterceptionPoint.POST_TOOL_CALL, after_tool)


def use_llm(crew: Any, llm: Any) -> None:
    """Give every agent of the crew the configured model (see the module doc)."""
    for agent in crew.agents:
        agent.llm = llm
        agent.function_calling_llm = llm
    # Crew-level LLM fields take only litellm-backed LLMs; every agent carries the
    # configured LLM itself (incl. function calling), so none is needed here.
    crew.function_calling_llm = None
    crew.manager_llm = None


class _NoKickoffLog:
    """Stands in for crewai's ``TaskOutputStorageHandler`` (see the module doc)."""

    def update(self, task_index: int, log: dict[str, Any]) -> None:
        pass

    def add(self, *args: Any, **kwargs: Any) -> None:
        pass

    def reset(self) -> None:
        pass

    def load(self) -> None:
        return None


def _step_name(task: Any, index: int) -> str:
    return str(task.name or f"task_{index + 1}")


def run(agent: CrewAgent, request: Any, session: SessionRun, factory: LLMFactory,
        bundle: LLMBundle, control: RunControl | None = None) -> ExecutionResult:
    """Run, resume or answer ``agent``'s crew for ``request``; blocking, call from a
    worker."""
    control = control or RunControl.detached(session.session_id)
    if agent.own_llm:
        bundle.mark_own()
        control.model = bundle.model
    # The agent code's own model clients reach the model gateway as this run's.
    with model_gateway.serving(agent, factory, bundle, control):
        if isinstance(agent, FlowAgent):
            from agent_wrapper.frameworks import crewai_flow

            return crewai_flow.run(agent, request, session, factory, bundle, control)
        return _run_crew(agent, request, session, factory, bundle, control)


def _run_crew(agent: CrewAgent, request: Any, session: SessionRun, factory: LLMFactory,
              bundle: LLMBundle, control: RunControl) -> ExecutionResult:
    state = session.agent_state(agent.name)
    pending = state.get("pending") or None
    asking = (pending or {}).get("asking")
    feedback: str | None = None
    if "resume" in request.model_fields_set:
        if not asking:
            why = ("it is waiting for no human input" if agent.can_request_input
                   else "none of its tasks asks for human input (human_input=True)")
            raise NoPendingInterrupt(f"agent {agent.name!r} of session "
                                     f"{session.session_id!r} has nothing to resume: {why}")
        feedback = human_input.feedback_of(request.resume)
        # The answer continues the asked run: its own goal, context and inputs.
        request = request.model_copy(update=pending["request"])
    else:
        fingerprint = request_fingerprint(FRAMEWORK, request.goal, request.context,
                                          request.input_data,
                                          None if agent.builtin else agent.name)
        if asking:
            if pending["fingerprint"] != fingerprint:
                raise InputRequired(f"agent {agent.name!r} of session "
                                    f"{session.session_id!r} waits for human input: answer "
                                    "with resume first")
            # The request that was asked, again: the same question, nothing runs.
            for step in pending["completed"]:
                control.step_resumed(step["name"], step.get("agent"), step["output"])
            return _asked(pending, state, [dict(step, resumed_from_checkpoint=True)
                                           for step in pending["completed"]])
        if not pending or pending.get("fingerprint") != fingerprint:
            # An unfinished run of a different request is abandoned, not resumed.
            pending = {"fingerprint": fingerprint, "run_id": uuid.uuid4().hex,
                       "completed": [], "asking": None,
                       "request": {"goal": request.goal, "context": request.context,
                                   "input_data": request.input_data}}
    return _kickoff(agent, request, session, factory, bundle, control, state, pending,
                    feedback)


def _asked(pending: dict[str, Any], state: dict[str, Any],
           steps: list[dict[str, Any]]) -> ExecutionResult:
    """The run waits for the human input its ``asking`` task asked for."""
    asking = pending["asking"]
    return ExecutionResult(output=asking["draft"], steps=steps,
                           checkpoint=state.get("last_checkpoint"), status="input_required",
                           interrupt=human_input.interrupt_of(asking))


def _kickoff(agent: CrewAgent, request: Any, session: SessionRun, factory: LLMFactory,
             bundle: LLMBundle, control: RunControl, state: dict[str, Any],
             pending: dict[str, Any], feedback: str | None) -> ExecutionResult:
    """Build the crew, resume its finished tasks, apply an answer, and kick it off."""
    completed: list[dict[str, Any]] = pending["completed"]
    steps = [dict(step, resumed_from_checkpoint=True) for step in completed]
    for step in completed:
        control.step_resumed(step["name"], step.get("agent"), step["output"])

    llm = None if agent.own_llm else factory.crewai_llm(bundle)
    assert agent.build is not None
    crew = agent.build(request, session, llm)
    crew._task_output_handler = _NoKickoffLog()
    if llm is not None:
        use_llm(crew, llm)
    tasks = list(crew.tasks)

    def on_task_done(task_output: TaskOutput) -> None:
        index = len(completed)
        step = {"name": task_output.name or _step_name(tasks[index], index),
                "agent": (task_output.agent or "").strip() or None, "output": task_output.raw}
        completed.append(step)
        steps.append(dict(step, resumed_from_checkpoint=False))
        pending["asking"] = None
        state["pending"] = pending
        state["last_checkpoint"] = f"crew:{pending['run_id']}:{step['name']}"
        session.save()
        session.step_checkpointed()
        control.step_finished(step["name"], step["agent"], step["output"],
                              state["last_checkpoint"], last=len(completed) == len(tasks))

    _chain_callbacks(tasks, on_task_done)
    asking = pending.get("asking")
    if feedback is not None and not feedback.strip():
        # Accepted as it is: crewai returns the draft as the task's output.
        task = tasks[asking["index"]]
        task.callback(TaskOutput(description=str(task.description), name=task.name,
                                 raw=asking["draft"], agent=str(asking.get("agent") or "")))
    if len(completed) >= len(tasks):
        state["pending"] = None
        return ExecutionResult(output=completed[-1]["output"] if completed else "",
                               steps=steps, checkpoint=state.get("last_checkpoint"))
    for index, task in enumerate(tasks[:len(completed)]):
        # Resumed: crewai skips a task that has its output once the kickoff is a
        # checkpoint resume, and passes the output on as context.
        task.output = TaskOutput(description=str(task.description), name=task.name,
                                 raw=completed[index]["output"],
                                 agent=str(completed[index].get("agent") or ""))
    if completed:
        crew.checkpoint_kickoff_event_id = f"federation:{pending['run_id']}"

    def on_ask(question: dict[str, Any]) -> None:
        pending["asking"] = question
        state["pending"] = pending
        session.save()

    bridge = human_input.HumanInputBridge(tasks, _step_name, on_ask, revise=asking,
                                          feedback=feedback or "")
    try:
        with scoped_hooks(), _providing_human_input(bridge):
            register_hooks(control, configured_llm=llm)
            result = crew.kickoff(inputs=agent.inputs(request))
    except Exception as exc:
        if human_input.awaiting(exc) is None:
            raise
        return _asked(pending, state, steps)
    finally:
        # Event handlers (and so the OpenInference spans) run on crewai's
        # thread pool: let them finish while our execution span is current.
        crewai_event_bus.flush()
    state["pending"] = None
    return ExecutionResult(output=str(result.raw), steps=steps,
                           checkpoint=state.get("last_checkpoint"))


def _chain_callbacks(tasks: list[Any], on_task_done: Callable[[TaskOutput], None]) -> None:
    """Each task's callback checkpoints first, then calls the project's own."""
    for task in tasks:
        user_callback = task.callback

        def callback(task_output: TaskOutput, user_callback: Any = user_callback) -> None:
            on_task_done(task_output)
            if user_callback is not None:
                user_callback(task_output)

        task.callback = callback


@contextmanager
def _providing_human_input(bridge: human_input.HumanInputBridge) -> Iterator[None]:
    """crewai asks ``bridge`` (not stdin) for human input within this context."""
    token = set_provider(bridge)
    try:
        yield
    finally:
        reset_provider(token)
