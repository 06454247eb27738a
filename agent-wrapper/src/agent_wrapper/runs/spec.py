"""What a run request asks for (``RunSpec``, as the routes hand it over), and the job the
durable queue keeps of it (``QueuedJob``) so that any worker can run it."""

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_wrapper.runs.executor import Runner

# A run with a request id: (federation_session_id, request_id).
Key = tuple[str, str]


@dataclass(frozen=True)
class QueuedJob:
    """A queued run, as the queue row keeps it (``to_dict``/``from_dict``)."""

    framework: str
    agent: str
    route: str
    body: dict[str, Any]  # the request body (models.RunRequest), ids filled in
    body_hash: str
    # W3C trace headers of the accepting request: the worker continues that trace.
    carrier: dict[str, str] = field(default_factory=dict)
    deadline_epoch_ms: int | None = None  # the caller's deadline, wall clock

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "agent": self.agent, "route": self.route,
                "body": self.body, "body_hash": self.body_hash, "carrier": self.carrier,
                "deadline_epoch_ms": self.deadline_epoch_ms}

    @classmethod
    def from_dict(cls, job: Mapping[str, Any]) -> "QueuedJob":
        return cls(framework=job["framework"], agent=job["agent"], route=job["route"],
                   body=dict(job["body"]), body_hash=job["body_hash"],
                   carrier=dict(job.get("carrier") or {}),
                   deadline_epoch_ms=job.get("deadline_epoch_ms"))


@dataclass
class RunSpec:
    """One run request, as the routes hand it over."""

    framework: str
    agent: str
    span_name: str
    runner: Runner
    route: str
    body: Any  # models.RunRequest
    session_id: str
    request_id: str | None
    body_hash: str
    trace_id: str
    deadline: float | None  # time.monotonic() value
    # W3C trace headers of the accepting request: a worker that takes the run from the
    # queue continues that trace.
    carrier: dict[str, str] = field(default_factory=dict)
    # False when nothing is acknowledged before the run's outcome (a blocking request):
    # its start is bookkeeping, not a durable write (``store/base.py``).
    durable_start: bool = True

    @property
    def key(self) -> Key | None:
        return None if self.request_id is None else (self.session_id, self.request_id)

    def queued_job(self) -> QueuedJob:
        """What the durable queue keeps to run this request on any worker."""
        body = self.body.model_dump(mode="json", exclude_unset=True)
        body.update(federation_session_id=self.session_id, request_id=self.request_id)
        deadline_ms = None
        if self.deadline is not None:
            deadline_ms = int((time.time() + self.deadline - time.monotonic()) * 1000)
        return QueuedJob(framework=self.framework, agent=self.agent, route=self.route,
                         body=body, body_hash=self.body_hash, carrier=self.carrier,
                         deadline_epoch_ms=deadline_ms)

    @classmethod
    def from_queued(cls, job: QueuedJob, agents: Any, trace_id: str) -> "RunSpec":
        """The spec of a queued run, on the worker that took it (``agents``: the
        ``AgentRegistry`` that resolves its agent)."""
        from agent_wrapper.frameworks import FRAMEWORKS
        from agent_wrapper.models import RunRequest

        body = RunRequest.model_validate(job.body)
        framework = FRAMEWORKS[job.framework]
        agent = agents.resolve(job.framework, job.agent)
        deadline = None
        if job.deadline_epoch_ms is not None:
            deadline = time.monotonic() + job.deadline_epoch_ms / 1000 - time.time()
        return cls(framework=job.framework, agent=agent.name, span_name=framework.SPAN_NAME,
                   runner=functools.partial(framework.run, agent), route=job.route,
                   body=body, session_id=str(body.federation_session_id),
                   request_id=body.request_id, body_hash=job.body_hash,
                   trace_id=trace_id, deadline=deadline, carrier=dict(job.carrier))
