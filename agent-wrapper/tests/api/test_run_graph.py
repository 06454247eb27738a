"""POST /v1/run_graph runs a real LangGraph StateGraph keyed by the session as thread."""

from fastapi.testclient import TestClient


def run(client: TestClient, goal: str, session: str, **extra: object):
    return client.post("/v1/run_graph", json={"goal": goal, "federation_session_id": session,
                                               **extra})


def test_graph_runs_plan_then_respond(client: TestClient) -> None:
    response = run(client, "Plan a migration", "graph-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["framework"] == "langgraph"
    assert [s["name"] for s in body["steps"]] == ["plan", "respond"]
    assert body["output"] == body["steps"][-1]["output"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert body["state"]["checkpoint"]
    assert response.headers["x-agent-wrapper-llm-calls"] == "2"


def test_thread_history_carries_across_requests(client: TestClient) -> None:
    run(client, "First question", "graph-2")
    body = run(client, "Second question", "graph-2").json()
    assert body["resumed"] is True
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
    assert body["messages"][0]["content"] == "First question"
    assert [h["goal"] for h in body["history"]] == ["First question", "Second question"]
