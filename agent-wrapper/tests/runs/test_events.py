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
