"""Writes the golden fixtures that bind federation-wire's serde types to the agent
wrapper's Pydantic models: per model its JSON Schema and example payloads validated and
dumped by the model itself; for the progress stream its event types and one event of
each; the wrapper's error codes (`error_codes.json`: `[{code, http_status, grpc_code}]`
sorted by code, from `agent_wrapper.contract.ErrorCode`). Only reads the wrapper's
package. The wrapper's tests check that these files are what this script writes
(`tests/api/test_contract.py`) and that its running replies fit the schemas.

    V=$(agent-wrapper/scripts/venv.sh | tail -1)
    "$V/bin/python" host/federation-wire/tests/golden/generate.py

Run it when the wrapper's contract changes; `cargo test -p federation-wire` then says
which Rust type no longer matches.
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[3]
sys.path.insert(0, str(ROOT / "agent-wrapper" / "src"))

from agent_wrapper import contract, models  # noqa: E402
from agent_wrapper.runs import events  # noqa: E402

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"

REQUEST = {
    "goal": "Plan a weekend in Lisbon",
    "context": "Audience: platform engineers",
    "input_data": {"city": "Lisbon", "budget": 600},
    "federation_session_id": "demo-trip-1",
    "request_id": "req-1",
    "metadata": {"team": "a"},
    "agent": "trip_planner",
    "resume": {"approved": True},
}

REPLY = {
    "output": "Day 1: Alfama. Day 2: Belem.",
    "framework": "langgraph",
    "agent": "trip_planner",
    "status": "completed",
    "interrupt": None,
    "federation_session_id": "demo-trip-1",
    "request_id": "req-1",
    "resumed": True,
    "trace_id": TRACE_ID,
    "llm": {"provider": "offline", "model": "offline-deterministic"},
    "steps": [
        {"name": "plan", "agent": None, "output": "itinerary", "resumed_from_checkpoint": True},
        {"name": "respond", "agent": "planner", "output": "answer",
         "resumed_from_checkpoint": False},
    ],
    "history": [
        {"request_id": "req-0", "agent": "trip_planner", "goal": "Plan a weekend in Lisbon",
         "output": "", "finished_at": "2026-12-01T10:00:00Z", "framework": "langgraph"},
    ],
    "state": {"store": "file", "run_count": 2, "checkpoint": "cp-2"},
    "messages": [{"role": "ai", "content": "Day 1: Alfama."}],
}

ASKING = {
    **REPLY,
    "output": "",
    "status": "input_required",
    "interrupt": {"question": "Which city?", "options": ["Lyon", "Porto"]},
    "resumed": False,
    "messages": None,
}

RECORD = {
    "federation_session_id": "demo-trip-1",
    "request_id": "req-1",
    "route": "/v1/run_graph",
    "framework": "langgraph",
    "agent": "trip_planner",
    "status": "completed",
    "attempt": 1,
    "cancel_requested": False,
    "trace_id": TRACE_ID,
    "body_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "progress": {"current_step": None, "steps": ["plan", "respond"], "llm_calls": 2},
    "created_at": "2026-12-01T10:00:00Z",
    "updated_at": "2026-12-01T10:00:02Z",
    "result": REPLY,
    "error": None,
}

FAILED = {
    **RECORD,
    "agent": None,
    "status": "canceled",
    "cancel_requested": True,
    "progress": {"current_step": "plan", "steps": [], "llm_calls": 0},
    "result": None,
    "error": {"status": 499, "code": "canceled", "message": "the run was canceled"},
}

AGENT = {
    "name": "trip_planner",
    "framework": "langgraph",
    "description": "plans a trip",
    "default": False,
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]},
    "can_request_input": True,
    "tools": ["lookup_weather"],
    "llm": "wrapper",
    "source": "examples/agents.toml",
}

MODELS = {
    "run_request": (models.RunRequest, [REQUEST]),
    "run_reply": (models.RunResponse, [REPLY, ASKING]),
    "run_record": (models.RunRecordView, [RECORD, FAILED]),
    "agent": (models.AgentView, [AGENT]),
    "agent_list": (models.AgentList, [{"agents": [AGENT]}]),
    "error_body": (models.ErrorResponse,
                   [{"error": {"code": "input_required", "message": "answer it first"}}]),
}

EVENT_DATA = {
    "started": {"framework": "langgraph", "federation_session_id": "demo-trip-1",
                "request_id": "req-1", "attempt": 1},
    "step": {"name": "plan", "agent": "planner", "phase": "finished", "output": "itinerary"},
    "llm_call": {"model": "offline", "agent": "planner", "step": "plan", "prompt_chars": 10,
                 "completion_chars": 20},
    "tool_call": {"tool": "lookup_weather", "agent": "planner", "step": "plan"},
    "checkpoint_saved": {"step": "plan", "checkpoint": 1},
    "completed": {"reply": REPLY, "llm_calls": 2, "replayed": False},
    "failed": {"status": 500, "code": "internal", "message": "boom"},
    "canceled": {"status": 499, "code": "canceled", "message": "the run was canceled"},
}


def render(content: dict | list) -> str:
    """A fixture's text, byte for byte."""
    return json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def fixtures() -> dict[str, dict | list]:
    """Every fixture by name (its file is ``<name>.json``)."""
    written: dict[str, dict | list] = {}
    for name, (model, examples) in MODELS.items():
        written[name] = {
            "model": model.__name__,
            "schema": model.model_json_schema(),
            "examples": [model.model_validate(e).model_dump(mode="json") for e in examples],
        }
    written["events"] = events_fixture()
    written["error_codes"] = contract.error_codes_table()
    return written


def events_fixture() -> dict:
    stream = []
    for seq, kind in enumerate(contract.EVENT_TYPES, start=1):
        event = events.make_event(seq, kind, TRACE_ID, EVENT_DATA[kind])
        event["ts"] = 1764583200000 + seq  # fixed, so regenerating changes nothing
        # The model of a line (the rejoin route documents it) takes every event.
        event = models.RunEvent.model_validate(event).model_dump(mode="json")
        stream.append(json.loads(events.encode(event)))
    return {
        "model": models.RunEvent.__name__,
        "schema": models.RunEvent.model_json_schema(),
        "event_types": list(contract.EVENT_TYPES),
        "terminal": sorted(contract.TERMINAL_EVENTS),
        "media_type": contract.NDJSON,
        "examples": stream,
    }


def main() -> None:
    for name, content in fixtures().items():
        path = HERE / f"{name}.json"
        path.write_text(render(content))
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
