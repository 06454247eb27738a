"""Progress events of a run, streamed as NDJSON (``Accept: application/x-ndjson``).

Each event is one JSON object on one line::

    {"seq": 1, "type": "started", "trace_id": "<32 hex>", "ts": <unix ms>, "data": {...}}

``seq`` starts at 1 and grows by 1; the last event of a stream is exactly one of
``completed`` / ``failed`` / ``canceled``. ``data`` by type:

* ``started``: ``framework``, ``federation_session_id``, ``request_id``, ``attempt``
  (+ ``replayed: true`` / ``attached: true`` when this request runs nothing itself)
* ``step``: ``name``, ``agent``, ``phase`` (``started`` | ``finished`` | ``resumed``),
  ``output`` (``finished`` and ``resumed`` only)
* ``llm_call``: ``model``, ``agent``, ``step``, ``prompt_chars``, ``completion_chars``,
  plus ``input_tokens`` / ``output_tokens`` when the model reports usage
* ``tool_call``: ``tool``, ``agent``, ``step``
* ``checkpoint_saved``: ``step``, ``checkpoint``
* ``completed``: ``reply`` (the normal JSON reply), ``llm_calls``, ``replayed``
* ``failed`` / ``canceled``: ``status`` (HTTP-like), ``code``, ``message``

An ``EventLog`` is written by the run's worker threads and read by any number of
asyncio consumers (the streaming request, attached duplicates), each from seq 1.
"""

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from agent_wrapper.core.errors import RunCanceled, WrapperError, error_info

EVENT_TYPES = ("started", "step", "llm_call", "tool_call", "checkpoint_saved", "completed",
               "failed", "canceled")
TERMINAL_EVENTS = frozenset({"completed", "failed", "canceled"})
NDJSON = "application/x-ndjson"


def make_event(seq: int, kind: str, trace_id: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown event type {kind!r}")
    return {"seq": seq, "type": kind, "trace_id": trace_id, "ts": int(time.time() * 1000),
            "data": data}


def encode(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
            + "\n").encode()


def terminal_for_error(error: WrapperError) -> tuple[str, dict[str, Any]]:
    """The final event type and data for a run that ended with ``error``."""
    kind = "canceled" if isinstance(error, RunCanceled) or error.code == "canceled" else "failed"
    return kind, error_info(error)


def completed_data(reply: dict[str, Any], llm_calls: int, replayed: bool) -> dict[str, Any]:
    return {"reply": reply, "llm_calls": llm_calls, "replayed": replayed}


class EventLog:
    """The ordered events of one run: thread-safe producer side, asyncio consumers."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self._events: list[dict[str, Any]] = []
        self._mutex = threading.Lock()
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        with self._mutex:
            return self._closed

    def events(self) -> list[dict[str, Any]]:
        with self._mutex:
            return list(self._events)

    def emit(self, kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Append an event (ignored once a terminal event was written)."""
        with self._mutex:
            if self._closed:
                return None
            event = make_event(len(self._events) + 1, kind, self.trace_id, data)
            self._events.append(event)
            self._closed = kind in TERMINAL_EVENTS
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._wake(waiter)
        return event

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        def resolve() -> None:
            if not waiter.done():
                waiter.set_result(None)

        # A closed loop (RuntimeError) has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            waiter.get_loop().call_soon_threadsafe(resolve)

    async def wait_from(self, start: int) -> list[dict[str, Any]]:
        """The events after the first ``start`` ones; waits until there is one."""
        while True:
            with self._mutex:
                if len(self._events) > start:
                    return self._events[start:]
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
            await waiter

    async def follow(self) -> AsyncIterator[dict[str, Any]]:
        """Every event from seq 1 up to and including the terminal one."""
        seen = 0
        while True:
            batch = await self.wait_from(seen)
            for event in batch:
                yield event
                if event["type"] in TERMINAL_EVENTS:
                    return
            seen += len(batch)

    async def wait_closed(self) -> None:
        async for _ in self.follow():
            pass
