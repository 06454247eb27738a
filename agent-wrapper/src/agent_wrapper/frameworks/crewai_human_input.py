"""CrewAI's ``human_input=True`` without stdin: the task's draft ends the run
``input_required``, and the caller's ``resume`` is the feedback crewai would have read.

crewai asks for human input through one seam, the human-input provider of the
current context (``crewai.core.providers.human_input.set_provider``): after the
task's agent reaches a final answer, ``handle_feedback(answer, executor)`` collects
feedback, appends it to the executor's messages as crewai's
``feedback_instructions`` and runs the agent loop again, until the feedback is empty.
The default provider reads ``input()``. ``HumanInputBridge`` is the wrapper's
provider, set for each crew run:

* asked (a draft reached ``handle_feedback``): the task, the agent, the draft and
  the executor's messages are stored with the run's checkpoint, and the run stops
  (``HookAborted``, which crewai lets through) to end ``input_required``.
* resumed with non-empty feedback: the asking task runs again from its stored
  messages plus the feedback (``setup_messages``), exactly the next round of
  crewai's loop; its new draft is asked about again, as crewai would ask again.
* resumed with an empty answer (or null): crewai would return the draft as the
  task's output, so the draft becomes the finished task's output (the task's own
  callback still gets it) and the crew goes on with the next task.
"""

import json
from collections.abc import Callable
from typing import Any

from crewai.hooks.dispatch import HookAborted

from agent_wrapper.core.errors import InvalidInput

# What the caller is asked (crewai's own console prompt, minus the console).
QUESTION = ("Provide feedback on the draft. If you are happy with it, answer with an empty "
            "string; otherwise give specific improvement requests.")


class AwaitingHumanInput(Exception):
    """The run stops here: ``asking`` holds the question's state."""

    def __init__(self, asking: dict[str, Any]) -> None:
        super().__init__(f"task {asking['task']!r} waits for human input")
        self.asking = asking


def feedback_of(resume: Any, *, what: str = "a crew task's human input") -> str:
    """The typed answer the resume stands for: a string, empty (or null) to accept."""
    if resume is None:
        return ""
    if not isinstance(resume, str):
        raise InvalidInput(f"resume must be a string for {what}: the feedback on what "
                           "it showed, or \"\" to accept it as it is")
    return resume


def interrupt_of(asking: dict[str, Any]) -> dict[str, Any]:
    """What ``TaskResponse.interrupt`` carries for a crew that asks."""
    return {"type": "human_input", "task": asking["task"], "agent": asking.get("agent"),
            "draft": asking["draft"], "round": asking.get("round", 1), "question": QUESTION}


def awaiting(exc: BaseException) -> AwaitingHumanInput | None:
    """The human-input stop in ``exc``'s chain, if that is why the crew stopped."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AwaitingHumanInput):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _plain(messages: list[Any]) -> list[dict[str, Any]]:
    """The executor's messages as JSON (what the checkpoint stores)."""
    return json.loads(json.dumps(list(messages), default=str))


class HumanInputBridge:
    """crewai's ``HumanInputProvider`` for one crew run (see the module doc).

    ``revise``: the stored question being answered with ``feedback`` (None on a run
    that answers nothing); ``on_ask(asking)`` stores a new question before the stop."""

    def __init__(self, tasks: list[Any], step_name: Callable[[Any, int], str],
                 on_ask: Callable[[dict[str, Any]], None],
                 revise: dict[str, Any] | None = None, feedback: str = "") -> None:
        self.tasks = tasks
        self.step_name = step_name
        self.on_ask = on_ask
        self.revise = revise if feedback.strip() else None
        self.feedback = feedback
        # The asking task asks again after revising: the next round of its question.
        self.rounds = {revise["index"]: revise.get("round", 1)} if self.revise else {}

    def _index(self, task: Any) -> int | None:
        return next((i for i, t in enumerate(self.tasks) if t is task), None)

    def setup_messages(self, context: Any) -> bool:
        revise = self.revise
        if revise is None or self._index(getattr(context, "task", None)) != revise["index"]:
            return False
        self.revise = None  # only the task's first execution in this run continues it
        context.messages = [*revise["messages"],
                            context._format_feedback_message(self.feedback)]
        return True

    def post_setup_messages(self, context: Any) -> None:
        pass

    def handle_feedback(self, formatted_answer: Any, context: Any) -> Any:
        task = getattr(context, "task", None)
        index = self._index(task)
        output = formatted_answer.output
        draft = output if isinstance(output, str) else output.model_dump_json()
        role = getattr(getattr(context, "agent", None), "role", None)
        asking = {"task": self.step_name(task, index or 0), "index": index,
                  "agent": role.strip() if isinstance(role, str) else role, "draft": draft,
                  "messages": _plain(context.messages),
                  "round": self.rounds.get(index, 0) + 1}
        self.on_ask(asking)
        raise HookAborted(f"task {asking['task']!r} waits for human input",
                          source="agent-wrapper") from AwaitingHumanInput(asking)

    async def handle_feedback_async(self, formatted_answer: Any, context: Any) -> Any:
        return self.handle_feedback(formatted_answer, context)
