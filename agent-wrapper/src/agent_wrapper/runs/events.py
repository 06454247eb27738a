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
asyncio consumers (the streaming request, attached duplicates), each from seq 1. With a
``persist`` callback the events are also written, in seq order, to the run record in the
shared store (``RunRecords.append_events``), so ``GET /v1/sessions/{sid}/runs/{rid}/events
?after=N`` on any replica replays the run's events after seq N and follows it live
(``follow_record``). They are written in batches: with the run's progress at the end of
each step (``flush_with``), with the terminal event, and otherwise at most
``PERSIST_DELAY_S`` after they happen (one thread per process flushes them). One record
write per step instead of one per event: a graph run emitted ~10 events, each a
read-modify-write of its record.
"""

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from agent_wrapper.contract import EVENT_TYPES, NDJSON, TERMINAL_EVENTS, ErrorCode
from agent_wrapper.core.errors import RunCanceled, StoreUnavailable, WrapperError, error_info
from agent_wrapper.core.per_process import PerProcess
from agent_wrapper.runs.run_record import FINISHED, TERMINAL, RunRecord

log = logging.getLogger(__name__)

__all__ = ["EVENT_TYPES", "NDJSON", "TERMINAL_EVENTS", "EventLog", "completed_data", "encode",
           "follow_record", "make_event", "terminal_for_error", "terminal_from_record"]

# Events persisted at once, with every event before them.
PERSIST_AT = TERMINAL_EVENTS
# How long another event may wait to be persisted: what a watcher on another replica
# lags behind a watcher on the run's own replica, at most.
PERSIST_DELAY_S = 0.2


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
    canceled = isinstance(error, RunCanceled) or error.code == ErrorCode.CANCELED
    kind = "canceled" if canceled else "failed"
    return kind, error_info(error)


def completed_data(reply: dict[str, Any], llm_calls: int, replayed: bool) -> dict[str, Any]:
    return {"reply": reply, "llm_calls": llm_calls, "replayed": replayed}


class EventLog:
    """The ordered events of one run: thread-safe producer side, asyncio consumers."""

    def __init__(self, trace_id: str,
                 persist: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        self.trace_id = trace_id
        self._events: list[dict[str, Any]] = []
        self._mutex = threading.Lock()
        # Held across taking the unpersisted events and persisting them: batches reach
        # the store in seq order even when several threads (crewai's hooks, the
        # flusher) persist at once.
        self._persist_mutex = threading.Lock()
        self._persist = persist
        self._unpersisted: list[dict[str, Any]] = []
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
        """Append an event (ignored once a terminal event was written); it is persisted
        now (``PERSIST_AT``) or within ``PERSIST_DELAY_S``."""
        with self._mutex:
            if self._closed:
                return None
            event = make_event(len(self._events) + 1, kind, self.trace_id, data)
            self._events.append(event)
            self._closed = kind in TERMINAL_EVENTS
            waiters, self._waiters = self._waiters, []
            if self._persist is not None:
                self._unpersisted.append(event)
        for waiter in waiters:
            self._wake(waiter)
        if self._persist is not None:
            if kind in PERSIST_AT:
                self.flush()
            else:
                _flusher().schedule(self)
        return event

    def flush(self) -> None:
        """Persist the events not persisted yet, in one write."""
        if self._persist is None:
            return
        try:
            self.flush_with(self._persist, skip_empty=True)
        except StoreUnavailable as exc:
            # The live stream goes on; a rejoin sees the gap in seq.
            log.warning("could not persist events of a run: %s", exc.message)
        except Exception:  # a closed client at shutdown: the run's outcome stands
            log.warning("could not persist events of a run", exc_info=True)

    def flush_with(self, write: Callable[[list[dict[str, Any]]], Any], *,
                   skip_empty: bool = False) -> Any:
        """Hand the events not persisted yet to ``write``, which stores them (with
        whatever else it writes) in one write, and return what it returns; batches
        reach the store in seq order. If ``write`` raises, the batch is not retried
        (a rejoin sees the gap in seq)."""
        with self._persist_mutex:
            with self._mutex:
                batch, self._unpersisted = self._unpersisted, []
            if skip_empty and not batch:
                return None
            return write(batch)

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


class _Flusher:
    """Persists the events of every run of this process that waited ``PERSIST_DELAY_S``
    (one thread, not one per run)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[EventLog, float] = {}
        self._thread: threading.Thread | None = None

    def schedule(self, events: EventLog) -> None:
        with self._cond:
            if events in self._due:
                return
            self._due[events] = time.monotonic() + PERSIST_DELAY_S
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="event-flusher")
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._due:
                    self._cond.wait()
                now = time.monotonic()
                ready = [log for log, at in self._due.items() if at <= now]
                if not ready:
                    self._cond.wait(min(self._due.values()) - now)
                    continue
                for events in ready:
                    del self._due[events]
            for events in ready:
                events.flush()


_flusher = PerProcess(_Flusher).get


# How long a follower waits for a finished run's terminal event to be persisted (it is
# written just after the record's final status) before it derives the event from the
# record itself (its worker died in between).
TERMINAL_GRACE_S = 2.0


def terminal_from_record(record: RunRecord, seq: int) -> dict[str, Any]:
    """The terminal event a finished run's record implies, numbered ``seq``."""
    if record.status in FINISHED:
        return make_event(seq, "completed", record.trace_id,
                          completed_data(record.result or {}, record.progress.llm_calls, False))
    kind, data = terminal_for_error(record.failure())
    return make_event(seq, kind, record.trace_id, data)


async def follow_record(load: Callable[[], Awaitable[RunRecord | Mapping[str, Any] | None]],
                        local: Callable[[], "EventLog | None"], after: int,
                        poll_s: float) -> AsyncIterator[dict[str, Any]]:
    """The events of a run with seq > ``after``, up to and including its terminal one:
    what its record's log holds, then live, from the run's ``EventLog`` when it runs on
    this replica (``local``) or by polling its record (``load``) every ``poll_s``.

    A run retried in a new attempt restarts its log at seq 1; the follower goes on with
    the new attempt's events after the last seq it gave."""
    seen = after
    terminal_since: float | None = None
    while True:
        events = local()
        if events is not None:
            async for event in _follow_local(events, seen):
                yield event
            return
        loaded = await load()
        if loaded is None:
            return  # expired meanwhile: nothing more to give
        record = RunRecord.of(loaded)
        for event in record.events:
            if int(event.get("seq", 0)) <= seen:
                continue
            yield event
            seen = int(event["seq"])
            if event.get("type") in TERMINAL_EVENTS:
                return
        if record.events and record.events[-1].get("type") in TERMINAL_EVENTS:
            return  # the caller saw the terminal event already
        if record.status in TERMINAL:
            now = time.monotonic()
            terminal_since = terminal_since or now
            if now - terminal_since >= TERMINAL_GRACE_S:
                yield terminal_from_record(record, seen + 1)
                return
        await asyncio.sleep(poll_s)


async def _follow_local(events: EventLog, seen: int) -> AsyncIterator[dict[str, Any]]:
    """The live events of a run on this replica after the first ``seen``, up to and
    including the terminal one."""
    while True:
        if events.closed and len(events.events()) <= seen:
            return  # the caller saw the terminal event already
        batch = await events.wait_from(seen)
        for event in batch:
            yield event
            if event["type"] in TERMINAL_EVENTS:
                return
        seen += len(batch)
