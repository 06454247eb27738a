"""Run-record transitions: create, replay, attach, 412, retry after failure, owner guard,
cancel flag; the canonical body hash."""

from pathlib import Path

import pytest

from agent_wrapper.core.errors import DeadlineExceeded, RequestIdReused, RunCanceled
from agent_wrapper.runs import RunRecords, body_sha256, public_view
from agent_wrapper.store import FileStateStore


@pytest.fixture
def records(tmp_path: Path) -> RunRecords:
    return RunRecords(FileStateStore(tmp_path / "state"), ttl_s=60)


def begin(records: RunRecords, body_hash: str = "h1", request_id: str = "r-1"):
    return records.begin(session_id="s", request_id=request_id, route="/v1/run_crew",
                         framework="crewai", agent="crew", body_hash=body_hash, trace_id="t" * 32)


def test_body_hash_is_canonical() -> None:
    one = body_sha256("/v1/run_crew", "g", "c", {"a": 1, "b": [1, 2]}, {"k": "v"})
    same = body_sha256("/v1/run_crew", "g", "c", {"b": [1, 2], "a": 1}, {"k": "v"})
    assert one == same and len(one) == 64
    assert one != body_sha256("/v1/run_graph", "g", "c", {"a": 1, "b": [1, 2]}, {"k": "v"})
    assert one != body_sha256("/v1/run_crew", "g", "c", {"a": 1, "b": [1, 2]}, {})


def test_claims_follow_the_record(records: RunRecords) -> None:
    first = begin(records)
    assert first.action == "run" and first.owner
    assert first.record["status"] == "submitted" and first.record["attempt"] == 1
    assert begin(records).action == "attach"
    with pytest.raises(RequestIdReused):
        begin(records, body_hash="h2")

    working = records.mark_working("s", "r-1", first.owner)
    assert working["status"] == "working"
    records.complete("s", "r-1", first.owner, {"output": "x"},
                     {"current_step": None, "steps": ["a"], "llm_calls": 1})
    replay = begin(records)
    assert replay.action == "replay"
    assert public_view(replay.record)["result"] == {"output": "x"}


def test_failed_and_canceled_runs_are_retried_with_a_new_owner(records: RunRecords) -> None:
    first = begin(records)
    records.fail("s", "r-1", first.owner, DeadlineExceeded("late"))
    failed = records.get("s", "r-1")
    assert failed["status"] == "failed"
    assert failed["error"] == {"status": 504, "code": "deadline_exceeded", "message": "late"}

    second = begin(records)
    assert second.action == "run" and second.owner != first.owner
    assert second.record["attempt"] == 2 and second.record["error"] is None
    # The first attempt no longer owns the record: its late writes are ignored.
    records.complete("s", "r-1", first.owner, {"output": "stale"}, {})
    assert records.get("s", "r-1")["status"] == "submitted"

    records.fail("s", "r-1", second.owner, RunCanceled("stop"))
    assert records.get("s", "r-1")["status"] == "canceled"
    assert begin(records).record["attempt"] == 3


def test_cancel_flags_only_runs_in_progress(records: RunRecords) -> None:
    assert records.request_cancel("s", "unknown") is None
    claim = begin(records)
    flagged = records.request_cancel("s", "r-1")
    assert flagged["cancel_requested"] is True and flagged["status"] == "submitted"
    records.fail("s", "r-1", claim.owner, RunCanceled("stop"))
    assert records.request_cancel("s", "r-1")["status"] == "canceled"


def test_take_over_needs_the_stale_owner(records: RunRecords) -> None:
    claim = begin(records)
    assert records.take_over("s", "r-1", "someone-else", "t" * 32) is None
    took = records.take_over("s", "r-1", claim.owner, "u" * 32)
    assert took is not None and took.owner != claim.owner
    assert took.record["attempt"] == 2 and took.record["trace_id"] == "u" * 32


def test_an_outcome_written_after_a_cancel_request_records_the_cancel(
        records: RunRecords) -> None:
    """The cancel was answered 202 before the run's outcome write: the write keeps it."""
    from agent_wrapper.core.errors import LLMFailure

    progress = {"current_step": None, "steps": ["research", "write"], "llm_calls": 2}
    for request_id, finish in (
            ("done", lambda owner: records.complete("s", "done", owner, {"output": "x"},
                                                    progress)),
            ("broke", lambda owner: records.fail("s", "broke", owner, LLMFailure("down"),
                                                 progress))):
        claim = begin(records, request_id=request_id)
        records.mark_working("s", request_id, claim.owner)
        assert records.request_cancel("s", request_id)["cancel_requested"] is True
        record = finish(claim.owner)
        assert (record["status"], record["result"]) == ("canceled", None)
        assert record["error"]["code"] == "canceled" and "canceled" in record["error"]["message"]
        assert record["progress"] == progress
    # Without a cancel request the outcome is what the run says.
    claim = begin(records, request_id="plain")
    assert records.complete("s", "plain", claim.owner, {"output": "x"}, progress)[
        "status"] == "completed"
