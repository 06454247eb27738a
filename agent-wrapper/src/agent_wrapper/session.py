"""One request's view of a federation session: the stored document and its saves.

Document layout (identical in the file and the Redis store)::

    {"version": 1, "session_id": str, "run_count": int,
     "history": [{"request_id", "framework", "goal", "output", "finished_at"}, ...],
     "crew":  {"pending": {"fingerprint", "run_id", "completed": [step, ...]} | null,
               "last_checkpoint": str | null},
     "graph": {"threads": <serialised LangGraph checkpoints>, "last_checkpoint": str | null},
     "updated_at": iso8601}

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

from agent_wrapper.core.errors import StoreUnavailable
from agent_wrapper.store.base import StateStore

log = logging.getLogger(__name__)

DOC_VERSION = 1
# How many finished runs are fed back into a new run's prompt.
HISTORY_IN_PROMPT = 5


def _now() -> str:
    return datetime.now(UTC).isoformat()


def new_document(session_id: str) -> dict[str, Any]:
    return {"version": DOC_VERSION, "session_id": session_id, "run_count": 0,
            "history": [], "crew": {"pending": None, "last_checkpoint": None},
            "graph": {"threads": None, "last_checkpoint": None}, "updated_at": _now()}


def request_fingerprint(framework: str, goal: str, context: str, input_data: dict) -> str:
    """Identifies "the same request" so only its own unfinished run is resumed."""
    blob = json.dumps([framework, goal, context, input_data], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class SessionRun:
    """Loaded session state plus checkpoint saving for one running request."""

    store: StateStore
    session_id: str
    document: dict[str, Any]
    resumed: bool
    crash_after_step: int | None = None
    store_errors: list[StoreUnavailable] = field(default_factory=list)
    _steps_saved: int = 0
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, store: StateStore, session_id: str,
             crash_after_step: int | None = None) -> "SessionRun":
        stored = store.load(session_id)
        document = stored if stored is not None else new_document(session_id)
        document.setdefault("crew", {"pending": None, "last_checkpoint": None})
        document.setdefault("graph", {"threads": None, "last_checkpoint": None})
        return cls(store, session_id, document, stored is not None, crash_after_step)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.document.setdefault("history", [])

    def history_prompt(self) -> str:
        """Previous finished runs, as text a model can use as context."""
        lines = [
            f"- goal: {item.get('goal', '')!s} -> answer: {str(item.get('output', ''))[:300]}"
            for item in self.history[-HISTORY_IN_PROMPT:]
        ]
        return "\n".join(lines)

    def save(self) -> None:
        """Persist the document now; remembers store failures for error mapping."""
        with self._mutex:
            self.document["updated_at"] = _now()
            try:
                self.store.save(self.session_id, self.document)
            except StoreUnavailable as exc:
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

    def finish(self, framework: str, request_id: str | None, goal: str, output: str) -> None:
        """Record the finished run and save it."""
        self.history.append({"request_id": request_id, "framework": framework, "goal": goal,
                             "output": output, "finished_at": _now()})
        self.document["run_count"] = int(self.document.get("run_count", 0)) + 1
        self.save()


@dataclass
class ExecutionResult:
    """What an executor hands back to the API layer."""

    output: str
    steps: list[dict[str, Any]]
    checkpoint: str | None
    messages: list[dict[str, str]] | None = None
