"""The NDJSON progress stream a run request answers with (``Accept:
application/x-ndjson``, see ``runs/events.py``), renumbered from seq 1 for this request:
its own run's events as they come; a replayed run's ``started`` + ``completed``; a run
it attached to followed live on this replica, or waited for through its record."""

import contextvars
from collections.abc import AsyncIterator
from typing import Any

from agent_wrapper.core.errors import WrapperError
from agent_wrapper.runs.admission import Started
from agent_wrapper.runs.events import completed_data, encode, make_event, terminal_for_error
from agent_wrapper.runs.local_runs import LocalRuns
from agent_wrapper.runs.records import FINISHED
from agent_wrapper.runs.spec import RunSpec
from agent_wrapper.runs.waiting import Waiting


class _Numbered:
    """Numbers a request's lines from seq 1, whatever the events' own seq."""

    def __init__(self, spec: RunSpec) -> None:
        self.seq = 0
        self.trace_id = spec.trace_id

    def line(self, event: dict[str, Any]) -> bytes:
        self.seq += 1
        return encode({**event, "seq": self.seq})

    def own(self, kind: str, data: dict[str, Any]) -> bytes:
        """An event this request writes itself (it runs nothing)."""
        return self.line(make_event(1, kind, self.trace_id, data))


async def stream(started: Started, spec: RunSpec, ctx: contextvars.Context,
                 runs: LocalRuns, waiting: Waiting) -> AsyncIterator[bytes]:
    """NDJSON lines for the request, ending with exactly one terminal event."""
    lines = _Numbered(spec)
    active = started.active
    if started.kind == "attach" and active is None and spec.request_id is not None:
        active = runs.get(spec.session_id, spec.request_id)
    if active is not None:
        # Our own run, or the same replica's run we attached to: its events as they come.
        async for event in active.events.follow():
            yield lines.line(event)
        return
    record = started.record
    info = {"framework": spec.framework, "federation_session_id": spec.session_id,
            "request_id": spec.request_id, "attempt": record.attempt if record else None}
    if started.kind == "replay":
        assert record is not None
        yield lines.own("started", {**info, "replayed": True})
        yield lines.own("completed", completed_data(record.result or {}, 0, True))
        return
    yield lines.own("started", {**info, "attached": True})
    async for line in _attached(spec, ctx, waiting, lines):
        yield line


async def _attached(spec: RunSpec, ctx: contextvars.Context, waiting: Waiting,
                    lines: _Numbered) -> AsyncIterator[bytes]:
    """The rest of an attached run of another replica: its outcome once its record
    ends, or its events when this request took it over."""
    try:
        result = await waiting.await_record(spec, ctx)
    except WrapperError as error:
        yield lines.own(*terminal_for_error(error))
        return
    if isinstance(result, Started):
        assert result.active is not None
        async for event in result.active.events.follow():
            if event["type"] != "started":
                yield lines.line(event)
        return
    if result.status in FINISHED:
        yield lines.own("completed", completed_data(result.result or {}, 0, True))
    else:
        yield lines.own(*terminal_for_error(result.failure()))
