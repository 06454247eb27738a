"""Runs the real CrewAI crew (researcher -> writer) with per-task checkpoints.

After each task CrewAI calls our task callback; it stores the task's output as
a checkpoint of the unfinished run before the next task starts. A request that
finds an unfinished run of the same request (same goal/context/input_data)
kicks off a crew of only the remaining tasks, handing them the checkpointed
outputs, so no finished task is redone. The session's finished runs are fed
into the task descriptions as context.

Step boundaries (``runs.control.RunControl``) use crewai's execution-scoped
interception hooks: ``PRE_STEP`` before each task, ``PRE_MODEL_CALL`` before each
LLM call (i.e. each agent step; crewai 1.15 does not call ``step_callback`` for a
text-mode final answer, so the hook is the reliable per-step seam), plus the task
callback after each task's checkpoint. A stop (cancel, deadline) raised there
becomes ``HookAborted``, the one exception crewai's hook dispatcher lets through,
and ends ``kickoff`` before the next LLM call.
"""

import json
import uuid
from collections.abc import Callable
from typing import Any

from crewai import Agent, Crew, Process, Task
from crewai.events.event_bus import crewai_event_bus
from crewai.hooks.dispatch import HookAborted, InterceptionPoint, register_scoped, scoped_hooks
from crewai.tasks.task_output import TaskOutput

from agent_wrapper.core.errors import WrapperError
from agent_wrapper.llm import LLMBundle, LLMFactory
from agent_wrapper.runs.control import RunControl
from agent_wrapper.session import ExecutionResult, SessionRun, request_fingerprint

FRAMEWORK = "crewai"


def _task_specs(goal: str, context: str, input_data: dict, history: str) -> list[dict[str, str]]:
    data = json.dumps(input_data, sort_keys=True, ensure_ascii=False)
    background = f"Additional context: {context or '(none)'}\nInput data (JSON): {data}"
    if history:
        background += f"\nEarlier runs in this session:\n{history}"
    return [
        {
            "name": "research",
            "agent": "researcher",
            "description": f"Research the goal: {goal}\n{background}",
            "expected_output": "Concise research notes with the key facts for the goal.",
        },
        {
            "name": "write",
            "agent": "writer",
            "description": f"Write the final answer for the goal: {goal}\n{background}",
            "expected_output": "A clear final answer to the goal.",
        },
    ]


def _agents(llm: Any) -> dict[str, Agent]:
    # llm is passed everywhere a crewai Agent could otherwise pick a default
    # (OpenAI) model; planning/reasoning/delegation stay off.
    common = {"llm": llm, "function_calling_llm": llm, "allow_delegation": False,
              "planning": False, "reasoning": False, "memory": False, "verbose": False,
              "max_iter": 3, "max_retry_limit": 0}
    return {
        "researcher": Agent(role="Researcher", goal="Find the facts a goal needs",
                            backstory="A careful analyst in an agent federation.", **common),
        "writer": Agent(role="Writer", goal="Turn research notes into a final answer",
                        backstory="A precise technical writer.", **common),
    }


def _role(ctx: Any) -> str | None:
    agent = getattr(ctx, "agent", None)
    return getattr(agent, "role", None) or getattr(ctx, "agent_role", None)


def _chars(messages: Any) -> int:
    if isinstance(messages, str):
        return len(messages)
    total = 0
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else message
        total += len(str(content or ""))
    return total


def _aborting(check: Callable[[], None]) -> None:
    """Run a boundary check; a stop becomes ``HookAborted`` (crewai swallows others)."""
    try:
        check()
    except WrapperError as exc:
        raise HookAborted(exc.message, source="agent-wrapper") from exc


def _register_hooks(control: RunControl) -> None:
    """Step-boundary hooks for the current ``scoped_hooks()`` context."""

    def before_step(ctx: Any) -> None:
        if getattr(ctx, "kind", None) == "task":
            _aborting(lambda: control.step_started(str(ctx.step_name), _role(ctx)))

    def before_llm(ctx: Any) -> None:
        _aborting(lambda: control.before_llm_call(_role(ctx)))

    def after_llm(ctx: Any) -> None:
        control.llm_finished(_role(ctx), _chars(getattr(ctx, "messages", None)),
                             len(str(getattr(ctx, "response", "") or "")))

    def after_tool(ctx: Any) -> None:
        control.tool_called(str(getattr(ctx, "tool_name", "tool")), _role(ctx))

    register_scoped(InterceptionPoint.PRE_STEP, before_step)
    register_scoped(InterceptionPoint.PRE_MODEL_CALL, before_llm)
    register_scoped(InterceptionPoint.POST_MODEL_CALL, after_llm)
    register_scoped(InterceptionPoint.POST_TOOL_CALL, after_tool)


def run_crew(request: Any, session: SessionRun, factory: LLMFactory, bundle: LLMBundle,
             control: RunControl | None = None) -> ExecutionResult:
    """Run (or resume) the crew for ``request``; blocking, call from a worker thread."""
    control = control or RunControl.detached(session.session_id)
    crew_state = session.document["crew"]
    fingerprint = request_fingerprint(FRAMEWORK, request.goal, request.context,
                                      request.input_data)
    pending = crew_state.get("pending")
    if not pending or pending.get("fingerprint") != fingerprint:
        # An unfinished run of a different request is abandoned, not resumed.
        pending = {"fingerprint": fingerprint, "run_id": uuid.uuid4().hex, "completed": []}
    completed: list[dict[str, Any]] = list(pending["completed"])
    steps = [dict(step, resumed_from_checkpoint=True) for step in completed]
    for step in completed:
        control.step_resumed(step["name"], step.get("agent"), step["output"])

    specs = _task_specs(request.goal, request.context, request.input_data,
                        session.history_prompt())
    remaining = specs[len(completed):]
    output = completed[-1]["output"] if completed else ""

    if remaining:
        llm = factory.crewai_llm(bundle)
        agents = _agents(llm)

        def on_task_done(task_output: TaskOutput) -> None:
            step = {"name": task_output.name or "task", "agent": task_output.agent,
                    "output": task_output.raw}
            completed.append(step)
            steps.append(dict(step, resumed_from_checkpoint=False))
            crew_state["pending"] = dict(pending, completed=list(completed))
            crew_state["last_checkpoint"] = f"crew:{pending['run_id']}:{step['name']}"
            session.save()
            session.step_checkpointed()
            control.step_finished(step["name"], step["agent"], step["output"],
                                  crew_state["last_checkpoint"],
                                  last=len(completed) == len(specs))

        tasks: list[Task] = []
        for spec in remaining:
            description = spec["description"]
            if completed:
                # Resumed: the checkpointed outputs replace the skipped tasks' context.
                notes = "\n".join(f"[{s['name']}] {s['output']}" for s in completed)
                description += f"\nResults of earlier steps (from checkpoint):\n{notes}"
            extra = {"context": list(tasks)} if tasks else {}
            tasks.append(Task(name=spec["name"], description=description,
                              expected_output=spec["expected_output"],
                              agent=agents[spec["agent"]], callback=on_task_done, **extra))
        # Crew-level LLM fields take only litellm-backed LLMs; every agent carries
        # the configured LLM itself (incl. function calling), so none is needed here.
        crew = Crew(agents=list(agents.values()), tasks=tasks, process=Process.sequential,
                    planning=False, memory=False, verbose=False, manager_llm=None)
        try:
            with scoped_hooks():
                _register_hooks(control)
                result = crew.kickoff()
        finally:
            # Event handlers (and so the OpenInference spans) run on crewai's
            # thread pool: let them finish while our execution span is current.
            crewai_event_bus.flush()
        output = result.raw

    crew_state["pending"] = None
    return ExecutionResult(output=output, steps=steps,
                           checkpoint=crew_state.get("last_checkpoint"))
