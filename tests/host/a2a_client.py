"""The host's A2A door driven by the official A2A client (PyPI ``a2a-sdk``, the A2A 1.0
SDK; nobody here wrote it), against the test kit's stub wrapper, whose goals shape the
runs (``interrupt`` asks for input, ``stream-slow:MS`` runs slowly).

Run by ``tests/host/a2a.rs`` as ``python a2a_client.py BASE_URL ALICE_TOKEN BOB_TOKEN
TRACEPARENT``. Every check asserts here, with a message; the last stdout line is a JSON
summary (ids, trace) the Rust test checks against the stub and the OTLP sink.
"""

import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.errors import A2AClientError
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf import json_format, struct_pb2

BASE, ALICE, BOB, TRACEPARENT = sys.argv[1:5]
STATE = TaskState.Name


def http_client(token: str | None, traceparent: str | None = None) -> httpx.AsyncClient:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if traceparent:
        headers["traceparent"] = traceparent
    return httpx.AsyncClient(headers=headers, timeout=60)


async def client_for(agent: str, http: httpx.AsyncClient, streaming: bool, polling: bool = False):
    config = ClientConfig(streaming=streaming, polling=polling, httpx_client=http)
    return await ClientFactory(config).create_from_url(f"{BASE}/agents/{agent}")


def message(*parts: Part, task_id: str = "", context_id: str = "", message_id: str = "") -> Message:
    return Message(
        role=Role.ROLE_USER,
        message_id=message_id or str(uuid.uuid4()),
        task_id=task_id,
        context_id=context_id,
        parts=list(parts),
    )


def text(value: str) -> Part:
    return Part(text=value)


def data(value) -> Part:
    proto = struct_pb2.Value()
    json_format.ParseDict(value, proto)
    return Part(data=proto)


def as_json(part: Part):
    return json_format.MessageToDict(part.data)


async def events_of(client, msg: Message, limit: int | None = None) -> list:
    events = []
    stream = client.send_message(SendMessageRequest(message=msg))
    async for event in stream:
        events.append(event)
        if limit is not None and len(events) >= limit:
            break
    await stream.aclose()
    return events


async def only_task(client, msg: Message):
    (event,) = await events_of(client, msg)
    assert event.HasField("task"), event
    return event.task


async def card_checks(http: httpx.AsyncClient) -> None:
    listing = (await http.get(f"{BASE}/agents")).json()
    names = sorted(card["name"] for card in listing["agents"])
    assert names == ["crew", "graph", "trip_planner"], names  # "team": no adapter
    card = await A2ACardResolver(http, f"{BASE}/agents/trip_planner").get_agent_card()
    assert card.name == "trip_planner" and card.capabilities.streaming, card
    assert not card.capabilities.push_notifications, card
    interface = card.supported_interfaces[0]
    assert interface.protocol_binding == "JSONRPC" and interface.protocol_version == "1.0"
    assert interface.url == f"{BASE}/agents/trip_planner", interface.url
    assert list(card.security_schemes) == ["bearer"], card.security_schemes
    assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
    skill = card.skills[0]
    assert "plans a trip" in skill.description and '"city"' in skill.description, skill
    assert "tool:lookup_weather" in skill.tags and "input-required" in skill.tags, skill.tags


async def send_checks(http: httpx.AsyncClient) -> dict:
    client = await client_for("crew", http, streaming=False)
    msg = message(text("write a haiku"), data({"topic": "rain"}))
    task = await only_task(client, msg)
    assert STATE(task.status.state) == "TASK_STATE_COMPLETED", task
    (artifact,) = task.artifacts
    assert artifact.parts[0].text == "stub answer to: write a haiku", artifact
    assert as_json(artifact.parts[1])["output"] == "stub answer to: write a haiku"
    assert task.id == f"{task.context_id}/{msg.message_id}", task.id
    # The same message again attaches to its task: it does not run twice.
    again = await only_task(client, msg)
    assert again.id == task.id and STATE(again.status.state) == "TASK_STATE_COMPLETED"
    return {"blocking_task": task.id, "blocking_request_id": msg.message_id,
            "trace_id": artifact.metadata["traceId"]}


async def stream_checks(http: httpx.AsyncClient) -> None:
    client = await client_for("graph", http, streaming=True)
    events = await events_of(client, message(text("stream this")))
    assert events[0].HasField("task"), events[0]
    kinds = [event.WhichOneof("payload") for event in events]
    progress = [e.status_update for e in events[1:] if e.HasField("status_update")
                and STATE(e.status_update.status.state) == "TASK_STATE_WORKING"
                and e.status_update.status.message.parts]
    assert progress, kinds
    assert as_json(progress[0].status.message.parts[-1])["kind"] in {
        "STEP", "LLM_CALL", "TOOL_CALL", "CHECKPOINT_SAVED"}
    assert "artifact_update" in kinds, kinds
    last = events[-1]
    assert STATE(last.status_update.status.state) == "TASK_STATE_COMPLETED", last


async def input_required_checks(http: httpx.AsyncClient) -> dict:
    client = await client_for("trip_planner", http, streaming=False)
    task = await only_task(client, message(text("interrupt"), data({"city": "?"})))
    assert STATE(task.status.state) == "TASK_STATE_INPUT_REQUIRED", task
    asked = [as_json(p) for p in task.status.message.parts if p.HasField("data")]
    assert asked == [{"question": "Which city?", "options": ["Lyon", "Porto"]}], asked
    answer = message(data({"city": "Porto"}), task_id=task.id, context_id=task.context_id)
    done = await only_task(client, answer)
    assert done.id == task.id and STATE(done.status.state) == "TASK_STATE_COMPLETED", done
    result = as_json(done.artifacts[0].parts[1])
    assert result["resume_received"] == {"city": "Porto"}, result
    # A completed task takes no more messages.
    try:
        await only_task(client, message(text("more"), task_id=task.id))
        raise AssertionError("a message to a completed task was accepted")
    except UnsupportedOperationError:
        pass
    return {"input_task": task.id, "answer_request_id": answer.message_id}


async def cancel_checks(http: httpx.AsyncClient) -> str:
    client = await client_for("crew", http, streaming=False, polling=True)
    task = await only_task(client, message(text("stream-slow:1000")))
    assert STATE(task.status.state) in {"TASK_STATE_SUBMITTED", "TASK_STATE_WORKING"}, task
    canceled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert STATE(canceled.status.state) == "TASK_STATE_CANCELED", canceled
    again = await client.get_task(GetTaskRequest(id=task.id))
    assert STATE(again.status.state) == "TASK_STATE_CANCELED", again
    try:
        await client.cancel_task(CancelTaskRequest(id=task.id))
        raise AssertionError("a canceled task was canceled again")
    except TaskNotCancelableError:
        pass
    return task.id


async def subscribe_checks(http: httpx.AsyncClient) -> str:
    client = await client_for("graph", http, streaming=True)
    first = await events_of(client, message(text("stream-slow:300")), limit=2)
    task_id = first[0].task.id
    # The stream was cut after two events; the task runs on and a subscription rejoins.
    events = []
    async for event in client.subscribe(SubscribeToTaskRequest(id=task_id)):
        events.append(event)
    assert events[0].HasField("task") and events[0].task.id == task_id, events[0]
    last = events[-1]
    assert STATE(last.status_update.status.state) == "TASK_STATE_COMPLETED", events
    try:
        async for _ in client.subscribe(SubscribeToTaskRequest(id=task_id)):
            pass
        raise AssertionError("subscribing to a completed task was accepted")
    except UnsupportedOperationError:
        pass
    return task_id


async def mistakes_checks(http: httpx.AsyncClient) -> None:
    client = await client_for("crew", http, streaming=False)
    for call in (client.get_task(GetTaskRequest(id="no-such/task")),
                 client.cancel_task(CancelTaskRequest(id="no-such/task")),
                 client.get_task(GetTaskRequest(id="not a task id"))):
        try:
            await call
            raise AssertionError("an unknown task was found")
        except TaskNotFoundError:
            pass
    try:
        await only_task(client, message(data({"only": "data"})))
        raise AssertionError("a message without a goal was accepted")
    except InvalidParamsError as error:
        assert "goal" in str(error), error
    raw = await http.post(f"{BASE}/agents/crew", content=b"{not json")
    assert raw.status_code == 200 and raw.json()["error"]["code"] == -32700, raw.text
    call = {"jsonrpc": "2.0", "id": 7, "method": "NoSuchMethod", "params": {}}
    raw = await http.post(f"{BASE}/agents/crew", json=call)
    assert raw.json()["error"]["code"] == -32601, raw.text
    call = {"jsonrpc": "2.0", "id": 8, "method": "GetTask", "params": {"id": "x/y"}}
    old = await http.post(f"{BASE}/agents/crew", json=call, headers={"A2A-Version": "0.3"})
    assert old.json()["error"]["code"] == -32009, old.text
    huge = await http.post(f"{BASE}/agents/crew", content=b" " * (3 << 20))
    assert huge.status_code == 413, huge.status_code
    missing = await http.get(f"{BASE}/agents/nobody/.well-known/agent-card.json")
    assert missing.status_code == 404, missing.status_code


async def principal_checks(alice_tasks: list[str], input_task: str) -> None:
    async with http_client(BOB) as bob_http:
        bob = await client_for("crew", bob_http, streaming=True)
        for task_id in alice_tasks:
            for call in (bob.get_task(GetTaskRequest(id=task_id)),
                         bob.cancel_task(CancelTaskRequest(id=task_id))):
                try:
                    await call
                    raise AssertionError(f"bob reached alice's task {task_id}")
                except TaskNotFoundError:
                    pass
        try:
            async for _ in bob.subscribe(SubscribeToTaskRequest(id=alice_tasks[0])):
                pass
            raise AssertionError("bob subscribed to alice's task")
        except TaskNotFoundError:
            pass
        try:
            await events_of(bob, message(text("answer"), task_id=input_task))
            raise AssertionError("bob answered alice's task")
        except TaskNotFoundError:
            pass
        listed = await bob.list_tasks(ListTasksRequest())
        assert not [t for t in listed.tasks if t.id in alice_tasks], listed
    async with http_client(None) as anonymous:
        call = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "a/b"}}
        raw = await anonymous.post(f"{BASE}/agents/crew", json=call, headers={"A2A-Version": "1.0"})
        assert raw.status_code == 401 and raw.json()["error"]["code"] == -32040, raw.text
        try:
            client = await client_for("crew", anonymous, streaming=False)
            await client.get_task(GetTaskRequest(id="a/b"))
            raise AssertionError("a call without a token was answered")
        except A2AClientError as error:
            assert "401" in str(error), error


async def main() -> None:
    summary: dict = {}
    async with http_client(ALICE, TRACEPARENT) as alice:
        await card_checks(alice)
        summary.update(await send_checks(alice))
        await stream_checks(alice)
        summary.update(await input_required_checks(alice))
        summary["canceled_task"] = await cancel_checks(alice)
        summary["subscribed_task"] = await subscribe_checks(alice)
        await mistakes_checks(alice)
        listed = await (await client_for("crew", alice, streaming=False)).list_tasks(
            ListTasksRequest(include_artifacts=True))
        ids = [t.id for t in listed.tasks]
        keys = ("blocking_task", "input_task", "canceled_task", "subscribed_task")
        mine = [summary[k] for k in keys]
        assert set(mine) <= set(ids), (mine, ids)
        assert ids[0] == summary["subscribed_task"], ids  # most recently changed first
    await principal_checks(mine, summary["input_task"])
    print(json.dumps(summary))


asyncio.run(main())
