"""RunControl at step boundaries: how often it reads the run record, and that a cancel
only the store knows of (sent to another replica) still stops the run."""

import time

import pytest

from agent_wrapper.core.errors import RunCanceled
from agent_wrapper.runs import control as run_control
from agent_wrapper.runs.control import RunControl
from agent_wrapper.runs.records import RunRecords
from agent_wrapper.store.file_store import FileStateStore


def test_back_to_back_boundaries_read_the_record_once_and_a_remote_cancel_still_stops(
        tmp_path, monkeypatch) -> None:
    records = RunRecords(FileStateStore(tmp_path), ttl_s=60)
    claim = records.begin(session_id="s", request_id="r", route="/v1/run_graph",
                          framework="langgraph", agent="graph", body_hash="h", trace_id="t")
    control = RunControl(session_id="s", request_id="r", owner=claim.owner, records=records)
    reads: list[tuple] = []
    read = records.get
    monkeypatch.setattr(records, "get", lambda *args: reads.append(args) or read(*args))

    control.step_started("plan", "plan")
    control.before_llm_call("plan")  # under a millisecond later: the same read answers
    assert len(reads) == 1

    records.request_cancel("s", "r")  # another replica: only the store knows
    time.sleep(run_control.RECORD_FRESH_S * 2)
    with pytest.raises(RunCanceled, match="canceled"):
        control.before_llm_call("plan")
    assert len(reads) == 2


def test_a_steps_progress_and_its_events_are_one_write(tmp_path, monkeypatch) -> None:
    from agent_wrapper.runs import events as run_events
    from agent_wrapper.runs.events import EventLog

    monkeypatch.setattr(run_events, "PERSIST_DELAY_S", 60.0)  # no timed flush meanwhile

    records = RunRecords(FileStateStore(tmp_path), ttl_s=60)
    claim = records.begin(session_id="s", request_id="r", route="/v1/run_graph",
                          framework="langgraph", agent="graph", body_hash="h", trace_id="t")
    owner = str(claim.owner)
    events = EventLog("t", lambda batch: records.append_events("s", "r", owner, batch))
    control = RunControl(session_id="s", request_id="r", owner=owner, records=records,
                         events=events)
    writes: list[str] = []
    update = records.store.update_run
    monkeypatch.setattr(records.store, "update_run",
                        lambda *a, **k: writes.append("w") or update(*a, **k))

    control.step_started("plan", "plan")
    control.step_finished("plan", "plan", "the plan", "cp-1")
    assert len(writes) == 1
    record = records.get("s", "r")
    assert record["progress"]["steps"] == ["plan"]
    assert [(e["type"], e["data"].get("phase")) for e in record["events"]] == [
        ("step", "started"), ("step", "finished"), ("checkpoint_saved", None)]
