"""The typed run record and the document the store keeps: a stored document reads back
to the same document (also fields a newer version added), a missing field takes its
default, and fields read as the document has them."""

from agent_wrapper.runs import RunProgress, RunRecord, public_view
from agent_wrapper.runs.run_record import RunFailure

DOCUMENT = {
    "version": 1, "federation_session_id": "s", "request_id": "r", "route": "/v1/run_graph",
    "framework": "langgraph", "agent": "graph", "body_sha256": "h", "status": "canceled",
    "attempt": 2, "owner": "o", "cancel_requested": True, "trace_id": "t" * 32,
    "progress": {"current_step": "plan", "steps": ["a"], "llm_calls": 3},
    "result": None, "error": {"status": 499, "code": "canceled", "message": "stop"},
    "events": [{"seq": 1, "type": "started"}], "created_at": "2026-12-01T10:00:00+00:00",
    "updated_at": "2026-12-01T10:00:01+00:00", "added_later": {"x": 1},
}


def test_a_document_reads_back_unchanged() -> None:
    record = RunRecord.from_dict(DOCUMENT)
    assert record.progress == RunProgress("plan", ("a",), 3)
    assert record.error == RunFailure(499, "canceled", "stop")
    assert record.failure().code == "canceled" and record.failure().status_code == 499
    assert record.to_dict() == DOCUMENT
    assert record["progress"] == DOCUMENT["progress"] and record["events"] == DOCUMENT["events"]
    assert "added_later" not in public_view(record) and "owner" not in public_view(record)
    assert public_view(record)["error"] == DOCUMENT["error"]


def test_missing_fields_take_their_defaults() -> None:
    record = RunRecord.from_dict({"status": "failed", "trace_id": "t"})
    assert (record.attempt, record.progress, record.events, record.error) == (
        1, RunProgress(), (), None)
    assert record.failure().code == "internal" and record.failure().status_code == 500
    assert record.to_dict()["progress"] == {"current_step": None, "steps": [], "llm_calls": 0}
