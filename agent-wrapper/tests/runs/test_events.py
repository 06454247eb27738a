"""EventLog: contiguous seq from 1, one terminal event, every consumer sees all events,
producers on other threads wake asyncio consumers."""

import asyncio
import threading

import pytest

from agent_wrapper.runs.events import EventLog, encode, make_event


def test_seq_and_terminal() -> None:
    log = EventLog("a" * 32)
    log.emit("started", {})
    log.emit("step", {"name": "x"})
    log.emit("completed", {"reply": {}})
    assert log.emit("step", {"late": True}) is None, "nothing after the terminal event"
    events = log.events()
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert {e["trace_id"] for e in events} == {"a" * 32}
    assert log.closed
    line = encode(events[0])
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    with pytest.raises(ValueError):
        make_event(1, "unknown", "a" * 32, {})


def test_consumers_follow_a_producer_thread() -> None:
    log = EventLog("b" * 32)

    def produce() -> None:
        for n in range(5):
            log.emit("step", {"n": n})
        log.emit("failed", {"status": 500, "code": "internal", "message": "x"})

    async def consume() -> list[int]:
        return [e["seq"] async for e in log.follow()]

    async def main() -> list[list[int]]:
        consumers = [asyncio.create_task(consume()) for _ in range(3)]
        await asyncio.sleep(0.01)
        threading.Thread(target=produce).start()
        return await asyncio.wait_for(asyncio.gather(*consumers), 10)

    assert asyncio.run(main()) == [[1, 2, 3, 4, 5, 6]] * 3


def test_events_are_persisted_in_batches_at_step_ends_and_the_terminal_event(
        monkeypatch) -> None:
    """One record write per step, not per event: a step's events go with its progress
    (``flush_with``) or the terminal event; each write holds every event before it."""
    import agent_wrapper.runs.events as events

    monkeypatch.setattr(events, "PERSIST_DELAY_S", 60.0)  # no timed flush meanwhile
    batches: list[list[int]] = []
    log = EventLog("c" * 32, lambda batch: batches.append([e["seq"] for e in batch]))
    log.emit("started", {})
    log.emit("step", {"name": "plan", "phase": "started"})
    log.emit("llm_call", {})
    log.emit("step", {"name": "plan", "phase": "finished"})
    log.emit("checkpoint_saved", {"step": "plan"})
    progress_writes: list[list[int]] = []
    assert log.flush_with(lambda batch: progress_writes.append([e["seq"] for e in batch])
                          or "record") == "record"
    log.emit("step", {"name": "respond", "phase": "started"})
    log.emit("completed", {"reply": {}})
    assert progress_writes == [[1, 2, 3, 4, 5]]
    assert batches == [[6, 7]]


def test_an_event_between_step_ends_is_persisted_within_the_delay(monkeypatch) -> None:
    """A watcher on another replica sees a long step start without waiting for its end."""
    import agent_wrapper.runs.events as events

    monkeypatch.setattr(events, "PERSIST_DELAY_S", 0.05)
    persisted = threading.Event()
    batches: list[list[str]] = []

    def persist(batch: list[dict]) -> None:
        batches.append([e["type"] for e in batch])
        persisted.set()

    log = EventLog("d" * 32, persist)
    log.emit("started", {})
    log.emit("step", {"name": "slow", "phase": "started"})
    assert persisted.wait(5), "the flusher thread persisted nothing"
    assert batches == [["started", "step"]]
    log.emit("completed", {"reply": {}})
    assert batches == [["started", "step"], ["completed"]]
    flushers = [t for t in threading.enumerate() if t.name == "event-flusher"]
    assert len(flushers) == 1, "one flusher thread per process, not one per run"


def test_a_store_that_fails_to_log_events_costs_the_run_and_its_stream_nothing(
        caplog, monkeypatch) -> None:
    """The record's event log is best effort: a failed write is logged, the live events
    all reach their followers, and a later batch is still written."""
    import agent_wrapper.runs.events as events
    from agent_wrapper.core.errors import StoreUnavailable

    monkeypatch.setattr(events, "PERSIST_DELAY_S", 60.0)  # no timed flush meanwhile

    written: list[list[int]] = []
    failures = iter([True, False])

    def persist(batch: list[dict]) -> None:
        if next(failures):
            raise StoreUnavailable("store down (injected)")
        written.append([e["seq"] for e in batch])

    log = EventLog("e" * 32, persist)
    log.emit("started", {})
    log.emit("step", {"name": "x", "phase": "started"})
    log.flush()  # fails: logged, not raised
    log.emit("step", {"name": "x", "phase": "finished"})
    log.emit("completed", {"reply": {}})
    assert [e["seq"] for e in log.events()] == [1, 2, 3, 4]
    assert log.closed
    assert written == [[3, 4]], "the later batch is written; the failed one is a gap"
    assert "could not persist events of a run: store down (injected)" in caplog.text
