"""The OpenAI-compatible path, against a local OpenAI-compatible server started here;
and an LLM that fails is a 502 with the cause."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_wrapper.core.config import Settings


class FakeOpenAI(BaseHTTPRequestHandler):
    calls: list[dict] = []
    fail = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).calls.append({"path": self.path, "body": body,
                                 "auth": self.headers.get("authorization")})
        if type(self).fail:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "model exploded"}}')
            return
        message = {"role": "assistant",
                   "content": "Thought: done\nFinal Answer: answer from the fake endpoint"}
        answered = any(m.get("role") == "tool" for m in body.get("messages", []))
        if body.get("tools") and not answered:
            # A real model's tool call: the wrapper must hand it to the graph's ToolNode.
            tool = body["tools"][0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_fake_1", "type": "function",
                "function": {"name": tool, "arguments": json.dumps({"country": "Italy"})}}]}
        reply = {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_openai() -> Iterator[str]:
    FakeOpenAI.calls = []
    FakeOpenAI.fail = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def openai_client(make_client, base_url: str):
    return make_client(llm_provider="openai", llm_base_url=base_url, llm_model="test-model",
                       llm_api_key="sk-test", llm_max_retries=0)


@pytest.mark.parametrize("route", ["/v1/run_crew", "/v1/run_graph"])
def test_both_frameworks_use_the_configured_endpoint(make_client, fake_openai, route) -> None:
    client = openai_client(make_client, fake_openai)
    response = client.post(route, json={"goal": "real model please"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["llm"] == {"provider": "openai-compatible", "model": "test-model"}
    assert "answer from the fake endpoint" in body["output"]
    assert len(FakeOpenAI.calls) == 2
    for call in FakeOpenAI.calls:
        assert call["path"] == "/v1/chat/completions"
        assert call["body"]["model"] == "test-model"
        assert call["auth"] == "Bearer sk-test"


@pytest.mark.parametrize("route", ["/v1/run_crew", "/v1/run_graph"])
def test_llm_failure_is_502_with_the_cause(make_client, fake_openai, route) -> None:
    FakeOpenAI.fail = True
    client = openai_client(make_client, fake_openai)
    response = client.post(route, json={"goal": "x", "federation_session_id": "llm-down"})
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "llm_failure"
    assert "500" in error["message"] or "exploded" in error["message"]
    # The failed run stored no finished history.
    ok = make_client().post(route, json={"goal": "y", "federation_session_id": "llm-down"})
    assert [h["goal"] for h in ok.json()["history"]] == ["y"]


def test_tool_calls_of_an_openai_compatible_model_reach_the_graphs_tools(
        make_client, fake_openai) -> None:
    from tests.conftest import FIXTURE_AGENTS

    client = make_client(llm_provider="openai", llm_base_url=fake_openai,
                         llm_model="test-model", llm_api_key="sk-test", llm_max_retries=0,
                         agents_file=FIXTURE_AGENTS)
    reply = client.post("/v1/run_graph", json={"goal": "capital?", "agent": "approval",
                                               "input_data": {"amount": 1}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "input_required"
    assert [s["name"] for s in body["steps"]] == ["research", "tools", "research"]
    assert body["steps"][1]["output"] == "Rome"  # the tool ran on the model's arguments
    first, second = FakeOpenAI.calls
    assert first["body"]["tools"][0]["function"]["name"] == "lookup_capital"
    tool_result = next(m for m in second["body"]["messages"] if m["role"] == "tool")
    assert (tool_result["tool_call_id"], tool_result["content"]) == ("call_fake_1", "Rome")


def test_openai_without_endpoint_fails_at_startup() -> None:
    with pytest.raises(ValueError, match="AGENT_WRAPPER_LLM_BASE_URL"):
        Settings(llm_provider="openai")


@pytest.mark.parametrize(("route", "method"), [("/v1/run_crew", "crewai_llm"),
                                               ("/v1/run_graph", "chat_model")])
def test_the_endpoints_client_is_built_once_and_shared_by_requests(
        make_client, fake_openai, route, method) -> None:
    # A fresh LLM per request built new OpenAI clients (and SSL contexts) every time.
    client = openai_client(make_client, fake_openai)
    factory = client.app.state.wrapper.llm_factory
    handed_out = []
    original = getattr(factory, method)

    def spy(bundle):
        llm = original(bundle)
        handed_out.append(llm)
        return llm

    setattr(factory, method, spy)
    for goal in ("first", "second"):
        response = client.post(route, json={"goal": goal})
        assert response.status_code == 200, response.text
    assert len(FakeOpenAI.calls) == 4
    assert len(handed_out) == 2
    assert handed_out[0] is handed_out[1]
