"""One request's view of a federation session: the stored document and its saves.

Document layout (identical in the file and the Redis store)::

    {"version": 2, "session_id": str, "run_count": int,
     "history": [{"request_id", "framework", "agent", "goal", "output", "finished_at"}, ...],
     "agents": {"<agent name>": {
         # crewai: the unfinished run's finished tasks
         "pending": {"fingerprint", "run_id", "completed": [step, ...]} | null,
         # langgraph: serialised checkpoints of the agent's thread, and the run's steps
         "threads": {...}, "run": {"fingerprint", "steps": [step, ...]} | null,
         "last_checkpoint": str | null}},
     "updated_at": iso8601}

Each agent of a session keeps its own state, so a session can use several agents.
Version-1 documents (``crew``/``graph`` at the top) are read as the built-in agents'.
Only completed steps and finished runs are ever added; a failing request adds at
most checkpoints of its own unfinished run, never rewrites history.
"""

import hashlib
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent_wrapper.core.errors import WrapperError
from agent_wrapper.store.base import SessionLock, StateStore

log = logging.getLogger(__name__)

DOC_VERSION = 2


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


def new_document(session_id: str) -> dict[str, Any]:
    return {"version": DOC_VERSION, "session_id": session_id, "run_count": 0,
            "history": [], "agents": {}, "updated_at": _now()}


def _upgrade(document: dict[str, Any]) -> dict[str, Any]:
    """A version-1 document's ``crew``/``graph`` become the built-in agents' state."""
    agents = document.setdefault("agents", {})
    for old, name in (("crew", "crew"), ("graph", "graph")):
        if isinstance(document.get(old), dict):
            agents.setdefault(name, document.pop(old))
    document["version"] = DOC_VERSION
    return document


def request_fingerprint(framework: str, goal: str, context: str, input_data: dict,
                        agent: str | None = None) -> str:
    """Identifies "the same request" so only its own unfinished run is resumed."""
    parts: list[Any] = [framework, goal, context, input_data]
    if agent is not None:
        parts.append(agent)
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class SessionRun:
    """Loaded session state plus checkpoint saving for one running request."""

    store: StateStore
    session_id: str
    document: dict[str, Any]
    resumed: bool
    crash_after_step: int | None = None
    # The run's session lock: fencing stores refuse saves once it is no longer held.
    lock: SessionLock | None = None
    # Store failures (unavailable, lease lost) a framework may have swallowed.
    store_errors: list[WrapperError] = field(default_factory=list)
    _steps_saved: int = 0
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, store: StateStore, session_id: str, crash_after_step: int | None = None,
             lock: SessionLock | None = None) -> "SessionRun":
        stored = store.load(session_id)
        document = _upgrade(stored) if stored is not None else new_document(session_id)
        return cls(store, session_id, document, stored is not None, crash_after_step, lock)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.document.setdefault("history", [])

    def agent_state(self, agent: str) -> dict[str, Any]:
        """The stored state of one agent of this session (created empty)."""
        return self.document.setdefault("agents", {}).setdefault(agent, {})

    def save(self, *, durable: bool = True) -> None:
        """Persist the document now; remembers store failures for error mapping."""
        with self._mutex:
            self.document["updated_at"] = _now()
            try:
                self.store.save(self.session_id, self.document, self.lock, durable=durable)
            except WrapperError as exc:
                self.store_errors.append(exc)
                raise

    def step_checkpointed(self) -> None:
        """Call after a step's checkpoint is durably stored (fault-injection point)."""
        self._steps_saved += 1
        if self.crash_after_step is not None and self._steps_saved >= self.crash_after_step:
            # TEST-ONLY (AGENT_WRAPPER_TEST_CRASH_AFTER_STEP): die like a killed
            # process, without cleanup, right after the checkpoint.
            log.warning("test fault injection: exiting after step %d", self._steps_saved)
            sys.stderr.flush()
            os._exit(17)

    def finish(self, framework: str, agent: str, request_id: str | None, goal: str,
               output: str, *, max_runs: int = 100, max_chars: int = 8_000,
               durable: bool = True) -> None:
        """Record the finished run and save it. The history keeps the newest
        ``max_runs`` runs, goal and output each cut to ``max_chars`` characters.
        ``durable=False`` when a durable write of the same store follows at once."""
        self.history.append({"request_id": request_id, "framework": framework, "agent": agent,
                             "goal": _cut(goal, max_chars), "output": _cut(output, max_chars),
                             "finished_at": _now()})
        del self.history[:-max_runs]
        self.document["run_count"] = int(self.document.get("run_count", 0)) + 1
        self.save(durable=durable)


@dataclass
class ExecutionResult:
    """What an executor hands back to the API layer."""

    output: str
    steps: list[dict[str, Any]]
    checkpoint: str | None
    messages: list[dict[str, str]] | None = None
    # "input_required": the run stopped at an interrupt and waits for ``resume``.
    status: str = "completed"
    interrupt: Any = None
