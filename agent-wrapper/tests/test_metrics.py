"""The wrapper's OpenTelemetry metrics, read by a real in-process reader: runs in flight,
run/step/LLM durations, the queue's depth and waits, store errors; and exported over
OTLP/HTTP to a real receiver."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from agent_wrapper import metrics
from agent_wrapper.core.errors import StoreUnavailable
from agent_wrapper.store import FileStateStore, SqliteStateStore
from tests.api.test_async import wait_for_status
from tests.conftest import METRICS, StepGate

ASYNC = {"prefer": "respond-async"}


def points(name: str, **attributes: Any) -> list[Any]:
    """The data points of ``name`` whose attributes include ``attributes`` (a collection:
    observable gauges are read now)."""
    data = METRICS.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += [p for p in metric.data.data_points
                              if attributes.items() <= dict(p.attributes).items()]
    return found


def total(name: str, **attributes: Any) -> float:
    """Sum of counter values, or of histogram counts."""
    return sum(getattr(p, "count", None) if hasattr(p, "count") else p.value
               for p in points(name, **attributes))


def gauge(name: str) -> float | None:
    found = points(name)
    return found[-1].value if found else None


def test_a_run_is_in_flight_while_it_runs_and_its_durations_are_recorded(
        make_client, gate: StepGate) -> None:
    client = make_client(step_hook=gate)
    framework = {"federation.framework": "langgraph"}
    runs = total("agent_wrapper.run.duration", **framework, **{
        "federation.run.status": "completed"})
    in_flight = total("agent_wrapper.runs.in_flight", **framework)
    steps = total("agent_wrapper.run.step.duration", **{"federation.step": "respond"})
    llm = total("gen_ai.client.operation.duration", **{
        "gen_ai.provider.name": "offline", "gen_ai.request.model": "offline-deterministic"})

    accepted = client.post("/v1/run_graph", headers=ASYNC, json={
        "goal": "measure me", "federation_session_id": "m-1", "request_id": "r"})
    assert accepted.status_code == 202
    gate.wait_reached()
    assert total("agent_wrapper.runs.in_flight", **framework) == in_flight + 1
    gate.release()
    assert wait_for_status(client, "/v1/sessions/m-1/runs/r", "completed")["status"] == (
        "completed")
    deadline = time.monotonic() + 10  # the record is written just before the run ends
    while total("agent_wrapper.runs.in_flight", **framework) != in_flight:
        assert time.monotonic() < deadline, "the run never left the in-flight count"
        time.sleep(0.02)
    assert total("agent_wrapper.run.duration", **framework, **{
        "federation.run.status": "completed"}) == runs + 1
    assert total("agent_wrapper.run.step.duration", **{"federation.step": "respond"}) == (
        steps + 1)
    assert total("gen_ai.client.operation.duration", **{
        "gen_ai.provider.name": "offline",
        "gen_ai.request.model": "offline-deterministic"}) == llm + 2  # plan, respond


def test_the_queue_depth_and_the_wait_of_a_queued_run(make_client, gate: StepGate,
                                                      monkeypatch) -> None:
    monkeypatch.setattr(metrics, "QUEUE_PROBE_MIN_S", 0.0)  # read the store on each collect
    client = make_client(step_hook=gate, max_runs=1, run_poll_ms=20)
    waits = total("agent_wrapper.queue.wait.duration")
    assert gauge("agent_wrapper.queue.depth") == 0
    assert gauge("agent_wrapper.runs.slots") == 1
    assert client.post("/v1/run_graph", headers=ASYNC, json={
        "goal": "hold", "federation_session_id": "d-1", "request_id": "r"}).status_code == 202
    gate.wait_reached()
    assert client.post("/v1/run_graph", headers=ASYNC, json={
        "goal": "wait", "federation_session_id": "d-2", "request_id": "r"}).status_code == 202
    assert gauge("agent_wrapper.queue.depth") == 1
    oldest = gauge("agent_wrapper.queue.oldest_wait")
    assert oldest is not None and oldest >= 0
    gate.release()
    assert wait_for_status(client, "/v1/sessions/d-2/runs/r", "completed")["status"] == (
        "completed")
    assert gauge("agent_wrapper.queue.depth") == 0
    assert total("agent_wrapper.queue.wait.duration") == waits + 1
    assert total("agent_wrapper.queue.claim.duration", **{"federation.queue.claimed": True})


def test_store_errors_are_counted_by_store_and_cause(tmp_path: Path) -> None:
    sqlite = {"federation.store.kind": "sqlite", "error.type": "OperationalError"}
    file = {"federation.store.kind": "file"}
    before = total("agent_wrapper.store.errors", **sqlite), total(
        "agent_wrapper.store.errors", **file)
    store = SqliteStateStore(tmp_path / "db" / "federation.db")
    store.close()
    store.path = tmp_path / "gone" / "federation.db"  # its directory does not exist
    with pytest.raises(StoreUnavailable):
        store.load("e-1")
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(StoreUnavailable):
        FileStateStore(tmp_path / "not-a-dir").save("e-1", {})
    assert total("agent_wrapper.store.errors", **sqlite) == before[0] + 1
    assert total("agent_wrapper.store.errors", **file) == before[1] + 1


@pytest.fixture
def otlp_metrics() -> Iterator[tuple[str, list[metrics_service_pb2.ExportMetricsServiceRequest]]]:
    received: list[metrics_service_pb2.ExportMetricsServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.path == "/v1/metrics":
                received.append(
                    metrics_service_pb2.ExportMetricsServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_metrics_reach_an_otlp_receiver(wrapper_process, tmp_path, otlp_metrics) -> None:
    endpoint, received = otlp_metrics
    wrapper = wrapper_process(
        OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_METRIC_EXPORT_INTERVAL="200",
        AGENT_WRAPPER_WORKERS="1", AGENT_WRAPPER_STATE_DIR=str(tmp_path / "s"))
    assert httpx.post(wrapper.url("/v1/run_graph"), timeout=60, json={
        "goal": "export", "federation_session_id": "o-1", "request_id": "r"}).status_code == 200
    wanted = {"agent_wrapper.runs.in_flight", "agent_wrapper.run.duration",
              "agent_wrapper.run.step.duration", "gen_ai.client.operation.duration",
              "agent_wrapper.queue.depth", "agent_wrapper.queue.oldest_wait",
              "agent_wrapper.runs.slots"}
    names: set[str] = set()
    deadline = time.monotonic() + 30
    while not wanted <= names and time.monotonic() < deadline:
        time.sleep(0.1)
        names = {m.name for request in list(received) for rm in request.resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics}
    assert wanted <= names, names
    resource = {a.key for a in received[-1].resource_metrics[0].resource.attributes}
    assert {"service.name", "service.instance.id"} <= resource
