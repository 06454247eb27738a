"""Telemetry conventions: GenAI attributes on LLM and tool spans beside OpenInference's,
stable HTTP attributes on server spans, and both OTLP protocols to a real receiver."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

from agent_wrapper.semconv import genai_attributes
from tests.conftest import FIXTURE_AGENTS, free_port

WORD_INPUT = {"topic": "cats", "text": "a b c", "audience": "kids"}


@pytest.mark.parametrize("route, body, tool", [
    ("/v1/run_crew", {"agent": "word_crew", "input_data": WORD_INPUT}, "word_count"),
    ("/v1/run_graph", {"agent": "approval", "input_data": {"amount": 1}}, "lookup_capital"),
])
def test_llm_and_tool_spans_carry_the_genai_conventions(
        make_client, spans, route: str, body: dict, tool: str) -> None:
    client: TestClient = make_client(agents_file=FIXTURE_AGENTS)
    assert client.post(route, json={"goal": "France", **body}).status_code == 200
    finished = spans.get_finished_spans()
    llm = [s for s in finished if s.attributes.get("openinference.span.kind") == "LLM"]
    assert llm
    for span in llm:
        attributes = span.attributes
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == "offline-deterministic"
        assert attributes["gen_ai.provider.name"] == "offline"
        assert attributes["gen_ai.usage.input_tokens"] >= 1
        assert attributes["gen_ai.usage.output_tokens"] >= 1
        assert attributes["llm.model_name"] == "offline-deterministic"  # OpenInference stays
    tools = [s for s in finished if s.attributes.get("openinference.span.kind") == "TOOL"]
    assert [s.attributes["gen_ai.tool.name"] for s in tools] == [tool]
    assert tools[0].attributes["gen_ai.operation.name"] == "execute_tool"
    if tool == "lookup_capital":  # LangChain knows the model's tool call id
        assert tools[0].attributes["gen_ai.tool.call.id"].startswith("call_")


def test_server_spans_use_the_stable_http_conventions(client: TestClient, spans) -> None:
    assert client.post("/v1/run_graph", json={"goal": "http"}).status_code == 200
    server = next(s for s in spans.get_finished_spans() if s.name == "POST /v1/run_graph")
    attributes = server.attributes
    assert attributes["http.request.method"] == "POST"
    assert attributes["url.path"] == "/v1/run_graph"
    assert attributes["http.response.status_code"] == 200
    assert "client.address" in attributes
    assert not {"http.method", "http.status_code", "net.peer.ip"} & set(attributes)


def test_the_mapping_of_openinference_attributes() -> None:
    assert genai_attributes({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
                             "llm.provider": "openai", "llm.token_count.prompt": 12,
                             "llm.token_count.completion": 3}) == {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
        "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}
    assert genai_attributes({"openinference.span.kind": "LLM",
                             "llm.model_name": "anthropic/claude"})["gen_ai.provider.name"] == (
        "anthropic")
    assert genai_attributes({"openinference.span.kind": "CHAIN"}) == {}


# -- both OTLP protocols, to real receivers --------------------------------------------------
class _GrpcTraces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.names: list[str] = []

    def Export(self, request, context):
        self.names += [span.name for resource in request.resource_spans
                       for scope in resource.scope_spans for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, _GrpcTraces]]:
    servicer = _GrpcTraces()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", servicer
    server.stop(0)


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, list[str]]]:
    names: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            names.extend(span.name for resource in request.resource_spans
                         for scope in resource.scope_spans for span in scope.spans)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", names
    server.shutdown()


def _run_and_wait(wrapper_process, env: dict[str, str], names: list[str]) -> None:
    wrapper = wrapper_process(**env)
    assert httpx.post(wrapper.url("/v1/run_graph"), json={"goal": "export me"},
                      timeout=60).status_code == 200
    deadline = time.monotonic() + 20
    while "LangGraph_Execution" not in names and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "LangGraph_Execution" in names and "POST /v1/run_graph" in names, names


def test_otlp_grpc_export_when_the_protocol_says_grpc(wrapper_process, tmp_path,
                                                      grpc_receiver) -> None:
    endpoint, servicer = grpc_receiver
    _run_and_wait(wrapper_process, {
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
        "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "s")}, servicer.names)


def test_the_traces_protocol_variable_overrides_the_general_one(wrapper_process, tmp_path,
                                                                 http_receiver) -> None:
    endpoint, names = http_receiver
    _run_and_wait(wrapper_process, {
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{endpoint}/v1/traces",
        "OTEL_BSP_SCHEDULE_DELAY": "100", "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "s")},
        names)


def test_an_unknown_protocol_stops_the_start_with_the_reason(tmp_path) -> None:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
           "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "s")}
    started = subprocess.run([sys.executable, "-m", "agent_wrapper", "--port",
                              str(free_port())], env=env, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='http/json' is not supported" in started.stderr
