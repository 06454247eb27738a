"""Runs a CrewAI Flow (``agents/flows.py``): ``kickoff(inputs=...)`` from
``input_data``, each method a step, state checkpointed after every method, a crash
resumed at the next method, and ``@human_feedback`` answered through ``resume``.

* Steps: crewai's ``PRE_STEP``/``POST_STEP`` interception hooks around each flow
  method (kind ``flow_method``) give the step events and the cancel/deadline
  boundaries; after a method, its output and the flow's state are stored with the
  session (the checkpoint) before the next method starts.
* Persistence: the flow gets ``SessionFlowPersistence``, crewai's ``FlowPersistence``
  backed by the session document: ``@persist`` and crewai's pause/resume read and
  write the session's flow state, never crewai's own SQLite file.
* Crash: the retry kicks the flow off again with its stored state (crewai's
  ``kickoff(inputs={"id": ...})`` restore); each method execution that finished
  before (by name and occurrence) returns its stored output instead of running, so
  routers route and listeners get their inputs exactly as before, and the first
  unfinished method is the first that runs. (crewai's own checkpoint resume drops
  a router's outcome and a finished listener's output, so it is not used.)
* Human feedback: crewai's deployment hook ``flow_config.hitl_provider`` is a
  provider that pauses (``HumanFeedbackPending``); crewai saves the pending review
  through the persistence and the run ends ``input_required`` with what the method
  returned. ``resume`` (the feedback text) continues it as crewai's
  ``Flow.from_pending(...).resume(feedback)``. ``Flow.ask()`` gets no console
  (``flow_config.input_provider`` answers None, as crewai does on a timeout).
* The model: unless the entry says ``llm = "own"``, every crew a method kicks off
  gets the configured LLM at its ``EXECUTION_START`` hook, and a review that routes
  by ``emit`` collapses the feedback with it.
"""

import importlib
import json
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from crewai.core.providers.human_input import reset_provider, set_provider
from crewai.events.event_bus import crewai_event_bus
from crewai.flow.async_feedback import HumanFeedbackPending, PendingFeedbackContext
from crewai.flow.flow_config import flow_config
from crewai.flow.persistence.base import FlowPersistence
from crewai.hooks.dispatch import HookAborted, InterceptionPoint, register_scoped, scoped_hooks
from pydantic import BaseModel, PrivateAttr

from agent_wrapper.agents.flows import FlowAgent
from agent_wrapper.core.errors import InputRequired, NoPendingInterrupt
from agent_wrapper.frameworks import crewai as crew_runner
from agent_wrapper.frameworks import crewai_human_input as human_input
from agent_wrapper.llm import LLMBundle, LLMFactory
from agent_wrapper.runs.control import RunControl
from agent_wrapper.session import ExecutionResult, SessionRun, request_fingerprint

FRAMEWORK = "crewai"
_MISSING = object()


# -- stored values ------------------------------------------------------------------------
def encode(value: Any) -> dict[str, Any]:
    """A method output as JSON that ``decode`` turns back into the same kind of value
    (a pydantic model, e.g. a ``CrewOutput``, comes back as its class)."""
    if isinstance(value, BaseModel):
        cls = type(value)
        return {"model": f"{cls.__module__}:{cls.__qualname__}",
                "data": value.model_dump(mode="json")}
    try:
        return {"json": json.loads(json.dumps(value))}
    except (TypeError, ValueError):
        return {"text": str(value)}


def decode(stored: dict[str, Any]) -> Any:
    if "model" in stored:
        module, _, name = stored["model"].partition(":")
        try:
            cls: Any = importlib.import_module(module)
            for part in name.split("."):
                cls = getattr(cls, part)
            return cls.model_validate(stored["data"])
        except Exception:
            return stored["data"]
    return stored.get("json", stored.get("text"))


def _state_json(state: Any) -> dict[str, Any]:
    if isinstance(state, BaseModel):
        return state.model_dump(mode="json")
    return json.loads(json.dumps(dict(state), default=str))


def _output_text(value: Any) -> str:
    raw = getattr(value, "raw", None)  # a CrewOutput / TaskOutput
    if isinstance(raw, str):
        return raw
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return crew_runner.text_of(value if value is not None else "")


# -- crewai's seams ---------------------------------------------------------------------
class _PauseForFeedback:
    """``flow_config.hitl_provider``: every review pauses the flow (nothing reads stdin)."""

    def request_feedback(self, context: PendingFeedbackContext, flow: Any) -> str:
        raise HumanFeedbackPending(context=context)


class _NoConsoleInput:
    """``flow_config.input_provider``: ``Flow.ask()`` gets None, as on a timeout."""

    def request_input(self, message: str, flow: Any, metadata: Any = None) -> None:
        return None


class _NoHumanInputInFlows:
    """A ``human_input=True`` task of a crew inside a flow: refused, not read from stdin."""

    def setup_messages(self, context: Any) -> bool:
        return False

    def post_setup_messages(self, context: Any) -> None:
        pass

    def handle_feedback(self, formatted_answer: Any, context: Any) -> Any:
        raise HookAborted("a crew task inside a flow asks for human input (human_input="
                          "True); ask with @human_feedback on the flow method instead",
                          source="agent-wrapper")

    async def handle_feedback_async(self, formatted_answer: Any, context: Any) -> Any:
        return self.handle_feedback(formatted_answer, context)


class SessionFlowPersistence(FlowPersistence):
    """crewai's ``FlowPersistence`` backed by the session: one flow run per session and
    agent (``_FlowRun`` holds it)."""

    persistence_type: str = "agent-federation-session"
    _run: Any = PrivateAttr(default=None)

    def init_db(self) -> None:
        pass

    def save_state(self, flow_uuid: str, method_name: str,
                   state_data: dict[str, Any] | BaseModel) -> None:
        # @persist after a method: the step's checkpoint stores the same state durably.
        self._run.record["snapshot"] = _state_json(state_data)

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        record = self._run.record
        return record.get("snapshot") if flow_uuid == record["flow_id"] else None

    def save_pending_feedback(self, flow_uuid: str, context: PendingFeedbackContext,
                              state_data: dict[str, Any] | BaseModel) -> None:
        self._run.paused(context, _state_json(state_data))

    def load_pending_feedback(self, flow_uuid: str
                              ) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        return self._run.pending_for(flow_uuid)

    def clear_pending_feedback(self, flow_uuid: str) -> None:
        # Kept until the answered run ends: a crash before then retries the answer.
        pass


def _use_platform_seams() -> None:
    """crewai's deployment hooks for feedback and ``ask()`` (process-wide, idempotent)."""
    if not isinstance(flow_config.hitl_provider, _PauseForFeedback):
        flow_config.hitl_provider = _PauseForFeedback()
    if not isinstance(flow_config.input_provider, _NoConsoleInput):
        flow_config.input_provider = _NoConsoleInput()


@contextmanager
def _no_crew_human_input() -> Any:
    token = set_provider(_NoHumanInputInFlows())
    try:
        yield
    finally:
        reset_provider(token)


# -- running ----------------------------------------------------------------------------
def run(agent: FlowAgent, request: Any, session: SessionRun, factory: LLMFactory,
        bundle: LLMBundle, control: RunControl) -> ExecutionResult:
    """Run, resume or answer ``agent``'s flow for ``request``; blocking."""
    state = session.agent_state(agent.name)
    record = state.get("flow")
    pending = (record or {}).get("pending")
    answer: str | None = None
    if "resume" in request.model_fields_set:
        if not pending:
            raise NoPendingInterrupt(f"agent {agent.name!r} of session "
                                     f"{session.session_id!r} has no flow waiting for "
                                     "human feedback; send the request without resume")
        answer = human_input.feedback_of(request.resume, what="a flow's human feedback")
        segment = record.get("segment")
        if not segment or segment.get("answer") != answer:
            # A new answer: the resumed part of the flow starts from the paused state.
            record["segment"] = {"answer": answer, "done": [], "fresh": True}
            record["snapshot"] = pending["state"]
        request = request.model_copy(update=record["request"])
    else:
        fingerprint = request_fingerprint(FRAMEWORK, request.goal, request.context,
                                          request.input_data, agent.name)
        if pending and record["fingerprint"] != fingerprint:
            raise InputRequired(f"agent {agent.name!r} of session {session.session_id!r} "
                                "waits for human feedback: answer with resume first")
        if not record or record["fingerprint"] != fingerprint:
            # An unfinished run of a different request is abandoned, not resumed.
            record = {"fingerprint": fingerprint, "flow_id": None,
                      "request": {"goal": request.goal, "context": request.context,
                                  "input_data": request.input_data},
                      "snapshot": None, "segment": {"answer": None, "done": []},
                      "steps": [], "pending": None}
    state["flow"] = record
    llm = None if agent.own_llm else factory.crewai_llm(bundle)
    flow_run = _FlowRun(agent, session, state, record, control, llm)
    if pending and answer is None:
        # The request that was asked, again: the same question, nothing runs.
        return flow_run.waiting()
    return flow_run.execute(request, answer)


class _FlowRun:
    """One run of a flow: its stored record, the replay of finished methods, the hooks."""

    def __init__(self, agent: FlowAgent, session: SessionRun, state: dict[str, Any],
                 record: dict[str, Any], control: RunControl, llm: Any) -> None:
        self.agent, self.session, self.state, self.record = agent, session, state, record
        self.control, self.llm = control, llm
        done = (record.get("segment") or {}).get("done", [])
        self.replayed = {(item["method"], item["n"]): item["output"] for item in done}
        self.counts: dict[str, int] = {}
        self.resumed_steps = len(record["steps"])
        self.persistence = SessionFlowPersistence()
        self.persistence._run = self
        self.flow: Any = None
        for step in record["steps"]:
            control.step_resumed(step["name"], step.get("agent"), step["output"])

    # -- what the persistence asks ----------------------------------------------------
    def paused(self, context: PendingFeedbackContext, state_data: dict[str, Any]) -> None:
        stored = json.loads(json.dumps(context.to_dict(), default=str))
        self.record.update(pending={"context": stored, "state": state_data},
                           snapshot=state_data, segment=None)
        self.session.save()

    def pending_for(self, flow_uuid: str
                    ) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        pending = self.record.get("pending")
        if not pending or flow_uuid != self.record["flow_id"]:
            return None
        context = PendingFeedbackContext.from_dict(pending["context"])
        if self.llm is not None:
            context.llm = self.llm  # the feedback is collapsed with the configured model
        return self.record.get("snapshot") or pending["state"], context

    # -- running -----------------------------------------------------------------------
    def execute(self, request: Any, answer: str | None) -> ExecutionResult:
        _use_platform_seams()
        record = self.record
        if answer is None:
            flow = self.agent.flow_class(persistence=self.persistence)
            if record["snapshot"] is None:  # nothing stored yet: a fresh start
                record["flow_id"] = flow.flow_id
                inputs = self.agent.inputs(request)
            else:  # crewai's restore of a persisted state (kickoff(inputs={"id": ...}))
                inputs = {"id": record["flow_id"]}
            self._prepare(flow)
            start: Callable[[], Any] = lambda: flow.kickoff(inputs=inputs)  # noqa: E731
        else:
            flow = self.agent.flow_class.from_pending(record["flow_id"], self.persistence)
            self._prepare(flow)
            if record["segment"].pop("fresh", False):
                self._review_answered(record["pending"]["context"])
            start = lambda: flow.resume(answer)  # noqa: E731
        try:
            with scoped_hooks(), _no_crew_human_input():
                crew_runner.register_hooks(self.control, tasks_are_steps=False,
                                           configured_llm=self.llm)
                self._register_hooks()
                result = start()
        finally:
            # Event handlers (and so the OpenInference spans) run on crewai's
            # thread pool: let them finish while our execution span is current.
            crewai_event_bus.flush()
        if isinstance(result, HumanFeedbackPending):
            return self.waiting()
        self.state["flow"] = None
        output = result if result is not None else _state_json(flow.state)
        return ExecutionResult(output=_output_text(output), steps=self._steps(),
                               checkpoint=self.state.get("last_checkpoint"))

    def waiting(self) -> ExecutionResult:
        """The run waits for the feedback its review asked for."""
        context = self.record["pending"]["context"]
        interrupt = {"type": "human_feedback", "method": context["method_name"],
                     "message": context.get("message"), "output": context.get("method_output"),
                     "emit": context.get("emit")}
        return ExecutionResult(output=_output_text(context.get("method_output")),
                               steps=self._steps(), checkpoint=self.state.get("last_checkpoint"),
                               status="input_required", interrupt=interrupt)

    def _steps(self) -> list[dict[str, Any]]:
        return [dict(step, resumed_from_checkpoint=index < self.resumed_steps)
                for index, step in enumerate(self.record["steps"])]

    def _review_answered(self, context: dict[str, Any]) -> None:
        """The reviewed method's step ends with the answer."""
        self._checkpoint(context["method_name"], 0, _output_text(context.get("method_output")))

    def _checkpoint(self, name: str, n: int, text: str) -> None:
        step = {"name": name, "agent": None, "output": crew_runner.text_of(text)}
        self.record["steps"].append(step)
        if self.flow is not None:
            self.record["snapshot"] = _state_json(self.flow.state)
        self.state["last_checkpoint"] = f"flow:{self.record['flow_id']}:{name}:{n}"
        self.session.save()
        self.session.step_checkpointed()
        self.control.step_finished(name, None, step["output"], self.state["last_checkpoint"])

    # -- crewai seams of this run ---------------------------------------------------------
    def _prepare(self, flow: Any) -> None:
        """Replay finished method executions; collapse reviews with the configured model."""
        self.flow = flow
        methods = flow._methods  # crewai's name -> bound method table the engine calls
        for name, method in list(methods.items()):
            methods[name] = self._replaying(str(name), method)
        if self.llm is not None:
            flow._definition = _with_review_llm(flow._definition, self.llm)

    def _next(self, name: str) -> int:
        self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts[name]

    def _replaying(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        import functools
        import inspect

        if inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                stored = self.replayed.get((name, self._next(name)), _MISSING)
                return await method(*args, **kwargs) if stored is _MISSING else decode(stored)

            return run_async

        @functools.wraps(method)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            stored = self.replayed.get((name, self._next(name)), _MISSING)
            return method(*args, **kwargs) if stored is _MISSING else decode(stored)

        return run_sync

    def _register_hooks(self) -> None:
        def ours(ctx: Any) -> bool:
            return getattr(ctx, "kind", None) == "flow_method" and ctx.flow is self.flow

        def before_method(ctx: Any) -> None:
            name = str(ctx.step_name)
            if ours(ctx) and (name, self.counts.get(name, 0) + 1) not in self.replayed:
                crew_runner.aborting(lambda: self.control.step_started(name, None))

        def after_method(ctx: Any) -> None:
            name = str(ctx.step_name)
            if not ours(ctx) or (name, self.counts.get(name, 0)) in self.replayed:
                return
            n = self.counts.get(name, 0)
            self.record["segment"]["done"].append({"method": name, "n": n,
                                                   "output": encode(ctx.output)})
            crew_runner.aborting(lambda: self._checkpoint(name, n, _output_text(ctx.output)))

        def crew_starts(ctx: Any) -> None:
            if self.llm is not None and getattr(ctx, "crew", None) is not None:
                crew_runner.use_llm(ctx.crew, self.llm)

        register_scoped(InterceptionPoint.PRE_STEP, before_method)
        register_scoped(InterceptionPoint.POST_STEP, after_method)
        register_scoped(InterceptionPoint.EXECUTION_START, crew_starts)


def _with_review_llm(definition: Any, llm: Any) -> Any:
    """A copy of the flow's definition whose routing reviews collapse feedback with
    ``llm`` (the class's definition is shared by every instance: never mutated)."""
    methods = dict(definition.methods)
    for name, method in methods.items():
        feedback = getattr(method, "human_feedback", None)
        if feedback is not None and (feedback.emit or feedback.learn):
            methods[name] = method.model_copy(
                update={"human_feedback": feedback.model_copy(update={"llm": llm})})
    return definition.model_copy(update={"methods": methods})
