"""The wrapper continues the caller's trace: server span -> *_Execution -> LLM spans,
and concurrent requests keep their spans in their own traces."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind


def traceparent(n: int) -> tuple[str, str, str]:
    trace_id = f"{n:032x}".replace("0", "a", 8)
    span_id = f"{n:016x}".replace("0", "b", 4)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def descendants(spans: list[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    found, frontier = [], [root.context.span_id]
    while frontier:
        parent = frontier.pop()
        for span in spans:
            if span.parent is not None and span.parent.span_id == parent:
                found.append(span)
                frontier.append(span.context.span_id)
    return found


@pytest.mark.parametrize("route, execution", [("/v1/run_crew", "CrewAI_Execution"),
                                              ("/v1/run_graph", "LangGraph_Execution")])
def test_trace_continues_from_traceparent_down_to_llm_spans(
        client: TestClient, spans, route: str, execution: str) -> None:
    header, trace_id, parent_id = traceparent(7)
    response = client.post(route, json={"goal": "traced", "federation_session_id": "t-1"},
                           headers={"traceparent": header})
    assert response.status_code == 200
    assert response.json()["trace_id"] == trace_id

    finished = [s for s in spans.get_finished_spans()
                if hex_id(s.context.trace_id, 32) == trace_id]
    server = next(s for s in finished if s.kind == SpanKind.SERVER)
    assert hex_id(server.parent.span_id, 16) == parent_id
    exec_span = next(s for s in finished if s.name == execution)
    assert exec_span.parent.span_id == server.context.span_id
    assert exec_span.attributes["federation.session_id"] == "t-1"
    assert exec_span.attributes["llm.model_name"] == "offline-deterministic"
    llm = [s for s in descendants(finished, exec_span)
           if s.attributes.get("openinference.span.kind") == "LLM"]
    assert len(llm) == 2, [s.name for s in descendants(finished, exec_span)]


def test_concurrent_requests_keep_their_own_traces(client: TestClient, spans) -> None:
    def call(n: int) -> str:
        header, trace_id, _ = traceparent(100 + n)
        route = "/v1/run_crew" if n % 2 else "/v1/run_graph"
        body = client.post(route, json={"goal": f"task {n}", "federation_session_id": f"c-{n}"},
                           headers={"traceparent": header}).json()
        assert body["trace_id"] == trace_id
        return trace_id

    with ThreadPoolExecutor(4) as pool:
        trace_ids = list(pool.map(call, range(4)))
    finished = spans.get_finished_spans()
    for n, trace_id in enumerate(trace_ids):
        own = [s for s in finished if hex_id(s.context.trace_id, 32) == trace_id]
        execution = [s for s in own if s.name.endswith("_Execution")]
        assert len(execution) == 1
        assert execution[0].attributes["federation.session_id"] == f"c-{n}"
        llm = [s for s in descendants(own, execution[0])
               if s.attributes.get("openinference.span.kind") == "LLM"]
        assert len(llm) == 2
        # Every span of this trace hangs off the caller's parent: none leaked in.
        ids = {s.context.span_id for s in own}
        roots = [s for s in own if s.parent is None or s.parent.span_id not in ids]
        assert len(roots) == 1
