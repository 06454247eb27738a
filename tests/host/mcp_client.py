"""The host's MCP door driven by the official MCP client (PyPI ``mcp``, the MCP Python
SDK; nobody here wrote it), against the test kit's stub wrapper, whose goals shape the
runs (``interrupt`` asks for input, ``stream-fail:NNN`` fails).

Run by ``tests/host/mcp.rs`` as ``python mcp_client.py MCP_URL ALICE_TOKEN BOB_TOKEN
TRACEPARENT``. Every check asserts here, with a message; the last stdout line is a JSON
summary (ids, trace) the Rust test checks against the stub and the OTLP sink.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

URL, ALICE, BOB, TRACEPARENT = sys.argv[1:5]
INVALID_PARAMS = -32602


def client(token: str | None, traceparent: str | None = None) -> Client:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if traceparent:
        headers["traceparent"] = traceparent
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    return Client(streamable_http_client(URL, http_client=http))


async def tools_are_the_agents_with_a_backend() -> None:
    async with client(ALICE) as alice:
        tools = {tool.name: tool for tool in (await alice.list_tools()).tools}
        assert {"crew", "graph", "trip_planner"} <= set(tools), sorted(tools)
        assert "team" not in tools, "an agent without a loaded backend was listed"
        trip = tools["trip_planner"]
        assert "plans a trip" in (trip.description or ""), trip.description
        schema = trip.input_schema
        assert set(schema["required"]) == {"goal", "city"}, schema
        for key in ("goal", "session_id", "resume", "city"):
            assert key in schema["properties"], (key, schema)


async def a_call_reports_progress_and_returns_its_result() -> dict:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with client(ALICE, TRACEPARENT) as alice:
        result = await alice.call_tool(
            "crew", {"goal": "Summarise WASM sandboxing"}, progress_callback=on_progress
        )
    assert not result.is_error, result
    assert result.content[0].text == "stub answer to: Summarise WASM sandboxing", result
    structured = result.structured_content
    assert structured["status"] == "completed", structured
    assert structured["output"] == "stub answer to: Summarise WASM sandboxing", structured
    assert structured["session_id"], structured
    assert isinstance(structured["result"], dict), structured
    # The stub's stream: started, then step, llm_call, tool_call, step, checkpoint_saved.
    assert len(progress) >= 5, progress
    values = [value for value, _ in progress]
    assert values == sorted(values) and len(set(values)) == len(values), values
    assert all(message for _, message in progress), progress
    return structured


async def an_interrupt_asks_and_a_resume_answers() -> dict:
    async with client(ALICE) as alice:
        asked = await alice.call_tool("trip_planner", {"goal": "interrupt", "city": "Lyon"})
        assert not asked.is_error, asked
        structured = asked.structured_content
        assert structured["status"] == "input_required", structured
        assert structured["interrupt"]["question"] == "Which city?", structured
        session = structured["session_id"]
        assert structured["answer_with"]["arguments"]["session_id"] == session, structured
        text = asked.content[0].text
        assert "Which city?" in text and session in text and "resume" in text, text

        answered = await alice.call_tool(
            "trip_planner",
            {"goal": "go on", "session_id": session, "resume": {"city": "Porto"}},
        )
        assert not answered.is_error, answered
        done = answered.structured_content
        assert done["status"] == "completed", done
        assert done["session_id"] == session, done
        return done


async def a_failed_run_is_a_tool_error_with_its_reason() -> None:
    async with client(ALICE) as alice:
        failed = await alice.call_tool("graph", {"goal": "stream-fail:502"})
    assert failed.is_error, failed
    structured = failed.structured_content
    assert structured["status"] == "failed", structured
    assert structured["reason"], structured
    assert any(d.get("reason") == structured["reason"] for d in structured["details"]), structured
    assert structured["reason"] in failed.content[0].text, failed.content


async def bad_arguments_are_invalid_params() -> None:
    async with client(ALICE) as alice:
        for name, arguments in [
            ("trip_planner", {"goal": "plan"}),  # the agent's required `city`
            ("crew", {}),  # no goal
            ("crew", {"goal": "g", "session_id": "not a valid id"}),
            ("crew", {"goal": "g", "resume": "Porto"}),  # a resume without its session
            ("nobody", {"goal": "g"}),  # no such tool
        ]:
            try:
                result = await alice.call_tool(name, arguments)
            except MCPError as error:
                assert error.code == INVALID_PARAMS, (name, arguments, error.code, error.message)
            else:
                raise AssertionError(f"{name} {arguments} was not refused: {result}")


async def an_unauthenticated_caller_is_refused() -> None:
    for token in (None, "wrong-token-0123456789"):
        try:
            async with client(token) as anonymous:
                await anonymous.list_tools()
        except Exception as error:  # noqa: BLE001 - the SDK's own error for a refused call
            print(f"refused ({token and 'wrong token' or 'no token'}): {error!r}")
        else:
            raise AssertionError(f"a caller with token {token!r} was served")
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            URL,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers.get("www-authenticate") == "Bearer", response.headers


async def a_call_the_client_gives_up_on_is_cancelled() -> None:
    # The SDK sends notifications/cancelled when a call times out; the host then stops
    # the run (the Rust side sees the wrapper's run cancelled).
    async with client(ALICE) as alice:
        try:
            result = await alice.call_tool("crew", {"goal": "stream-slow:400"}, read_timeout_seconds=1.0)
        except Exception as error:  # noqa: BLE001 - the SDK's own timeout error
            print(f"gave up: {error!r}")
        else:
            raise AssertionError(f"a 2.4 s run answered within a 1 s timeout: {result}")


async def another_principal_runs_as_itself() -> dict:
    async with client(BOB) as bob:
        result = await bob.call_tool("crew", {"goal": "as bob"})
    assert not result.is_error, result
    return result.structured_content


async def main() -> None:
    await tools_are_the_agents_with_a_backend()
    traced = await a_call_reports_progress_and_returns_its_result()
    answered = await an_interrupt_asks_and_a_resume_answers()
    await a_failed_run_is_a_tool_error_with_its_reason()
    await bad_arguments_are_invalid_params()
    await an_unauthenticated_caller_is_refused()
    await a_call_the_client_gives_up_on_is_cancelled()
    bob = await another_principal_runs_as_itself()
    print(
        json.dumps(
            {
                "trace_id": traced.get("trace_id"),
                "traced_request_id": traced.get("request_id"),
                "answer_request_id": answered.get("request_id"),
                "answer_session_id": answered["session_id"],
                "bob_request_id": bob.get("request_id"),
            }
        )
    )


asyncio.run(main())
