"""What the running wrapper actually sends, checked against the golden JSON Schemas that
bind it to federation-wire (``host/federation-wire/tests/golden``), not only against its
Pydantic models: run replies, run records (202, status, cancel), the agent list, error
bodies (code and status as ``contract.ErrorCode`` lists them, ``Retry-After`` on
``overloaded``) and the NDJSON events of a stream, a replay and a rejoin. The schemas are
closed here (no field beyond the schema's), as the Rust types are."""

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from agent_wrapper import contract
from agent_wrapper.contract import ErrorCode
from tests.conftest import StepGate

GOLDEN = Path(__file__).resolve().parents[3] / "host" / "federation-wire" / "tests" / "golden"
ASYNC = {contract.PREFER_HEADER: contract.RESPOND_ASYNC}
STREAM = {"accept": contract.NDJSON}


def closed(node: Any) -> Any:
    """``node`` with every object schema that lists properties refusing other ones."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: closed(value) for key, value in node.items()}
    if "properties" in copy:
        copy.setdefault("additionalProperties", False)
    return copy


def schema(name: str, definition: str | None = None) -> dict:
    """The golden schema of fixture ``name`` (or one of its ``$defs``), closed."""
    whole = closed(json.loads((GOLDEN / f"{name}.json").read_text())["schema"])
    if definition is None:
        return whole
    return {"$defs": whole["$defs"], "$ref": f"#/$defs/{definition}"}


def fits(value: Any, name: str, definition: str | None = None) -> None:
    jsonschema.Draft202012Validator(schema(name, definition)).validate(value)


def fits_error(reply: Response, code: ErrorCode) -> None:
    assert reply.status_code == code.http_status, reply.text
    fits(reply.json(), "error_body")
    assert reply.json()["error"]["code"] == code.value


def fits_events(lines: list[dict]) -> None:
    """Every line is a golden event; a terminal one carries a golden reply or error."""
    assert lines and lines[-1]["type"] in contract.TERMINAL_EVENTS, lines
    for event in lines:
        fits(event, "events")
        if event["type"] == "completed":
            fits(event["data"]["reply"], "run_reply")
        elif event["type"] in contract.TERMINAL_EVENTS:
            fits(event["data"], "run_record", "RunError")


def ndjson(reply: Response) -> list[dict]:
    assert reply.headers["content-type"].startswith(contract.NDJSON)
    return [json.loads(line) for line in reply.text.splitlines() if line.strip()]


def wait_for(client: TestClient, path: str, status: str) -> dict:
    deadline = time.monotonic() + 60
    while (record := client.get(path).json())["status"] != status:
        assert time.monotonic() < deadline, record
        time.sleep(0.05)
    return record


@pytest.mark.parametrize("route", [contract.RUN_CREW, contract.RUN_GRAPH])
def test_a_run_reply_and_its_record(client: TestClient, route: str) -> None:
    body = {"goal": "Plan a weekend", "federation_session_id": "w-1", "request_id": route[4:]}
    reply = client.post(route, json=body)
    assert reply.status_code == 200, reply.text
    fits(reply.json(), "run_reply")
    assert reply.headers[contract.REQUEST_ID_HEADER] == body["request_id"]
    assert int(reply.headers[contract.LLM_CALLS_HEADER]) >= 1
    record = client.get(contract.run_record_path("w-1", body["request_id"]))
    assert record.status_code == 200
    fits(record.json(), "run_record")
    assert record.json()["result"] == reply.json()


def test_the_agent_list(client: TestClient) -> None:
    reply = client.get(contract.AGENTS)
    assert reply.status_code == 200
    fits(reply.json(), "agent_list")
    fits(client.get(contract.AGENTS, params={"framework": "crewai"}).json(), "agent_list")


def test_error_bodies(make_client) -> None:
    client = make_client(max_body_bytes=2048)
    fits_error(client.post(contract.RUN_CREW, json={"goal": " "}), ErrorCode.INVALID_INPUT)
    fits_error(client.post(contract.RUN_CREW, json={"goal": "x", "agent": "nobody"}),
               ErrorCode.AGENT_NOT_FOUND)
    fits_error(client.post(contract.RUN_CREW, json={"goal": "x"},
                           headers={contract.DEADLINE_HEADER: "soon"}), ErrorCode.BAD_REQUEST)
    fits_error(client.post(contract.RUN_CREW, json={"goal": "x" * 4096}),
               ErrorCode.PAYLOAD_TOO_LARGE)
    fits_error(client.get(contract.run_record_path("w-2", "never")), ErrorCode.RUN_NOT_FOUND)
    fits_error(client.get("/v1/nothing-here"), ErrorCode.NOT_FOUND)
    fits_error(client.get(contract.RUN_CREW), ErrorCode.METHOD_NOT_ALLOWED)
    body = {"goal": "one", "federation_session_id": "w-3", "request_id": "r"}
    assert client.post(contract.RUN_GRAPH, json=body).status_code == 200
    fits_error(client.post(contract.RUN_GRAPH, json={**body, "goal": "two"}),
               ErrorCode.REQUEST_ID_REUSED)


def test_a_held_run_overloaded_canceled_and_rejoined(make_client, gate: StepGate) -> None:
    """A run held at a step boundary fills the only slot: another run is 503 overloaded
    with Retry-After; the held run's 202, its cancel and its record fit the wire."""
    client = make_client(step_hook=gate, max_runs=1, store="file", run_poll_ms=20)
    body = {"goal": "Hold me", "federation_session_id": "w-4", "request_id": "held"}
    accepted = client.post(contract.RUN_GRAPH, json=body, headers=ASYNC)
    assert accepted.status_code == 202, accepted.text
    fits(accepted.json(), "run_record")
    gate.wait_reached()
    refused = client.post(contract.RUN_CREW, json={"goal": "x", "federation_session_id": "w-5"})
    fits_error(refused, ErrorCode.OVERLOADED)
    assert int(refused.headers[contract.RETRY_AFTER_HEADER]) >= 1

    path = contract.run_record_path("w-4", "held")
    cancel = client.post(contract.RUN_CANCEL.format(federation_session_id="w-4",
                                                    request_id="held"))
    assert cancel.status_code == 202
    fits(cancel.json(), "run_record")
    gate.release()
    record = wait_for(client, path, "canceled")
    fits(record, "run_record")
    assert record["error"]["code"] == ErrorCode.CANCELED
    rejoined = client.get(contract.RUN_EVENTS.format(federation_session_id="w-4",
                                                     request_id="held"))
    events = ndjson(rejoined)
    fits_events(events)
    assert events[-1]["type"] == "canceled"


def test_streamed_replayed_and_rejoined_events(client: TestClient) -> None:
    body = {"goal": "Stream me", "federation_session_id": "w-6", "request_id": "s"}
    streamed = ndjson(client.post(contract.RUN_CREW, json=body, headers=STREAM))
    fits_events(streamed)
    assert streamed[-1]["type"] == "completed"
    replayed = ndjson(client.post(contract.RUN_CREW, json=body, headers=STREAM))
    fits_events(replayed)
    assert replayed[0]["data"]["replayed"] is True
    rejoined = ndjson(client.get(contract.RUN_EVENTS.format(federation_session_id="w-6",
                                                            request_id="s")))
    fits_events(rejoined)
    assert rejoined == streamed
