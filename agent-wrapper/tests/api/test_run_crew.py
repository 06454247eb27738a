"""POST /v1/run_crew runs a real CrewAI crew with the offline model and resumes sessions."""

from fastapi.testclient import TestClient


def run(client: TestClient, goal: str, session: str, **extra: object):
    return client.post("/v1/run_crew", json={"goal": goal, "federation_session_id": session,
                                              **extra})


def test_crew_runs_two_tasks_and_reports_metadata(client: TestClient) -> None:
    response = run(client, "Summarise WASM sandboxing", "crew-1", context="for SREs",
                   input_data={"audience": "ops"}, request_id="r1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["framework"] == "crewai"
    assert body["federation_session_id"] == "crew-1"
    assert body["request_id"] == "r1"
    assert body["resumed"] is False
    assert body["llm"] == {"provider": "offline", "model": "offline-deterministic"}
    assert [s["name"] for s in body["steps"]] == ["research", "write"]
    assert [s["agent"] for s in body["steps"]] == ["Researcher", "Writer"]
    assert body["output"] == body["steps"][-1]["output"]
    assert "Summarise WASM sandboxing" in body["output"]
    assert len(body["trace_id"]) == 32
    assert body["state"]["store"] == "sqlite"
    assert body["state"]["run_count"] == 1
    assert response.headers["x-agent-wrapper-llm-calls"] == "2"


def test_same_session_resumes_with_history(client: TestClient) -> None:
    first = run(client, "Draft a plan", "crew-2").json()
    second = run(client, "Refine the plan", "crew-2").json()
    assert first["resumed"] is False
    assert second["resumed"] is True
    assert [h["goal"] for h in second["history"]] == ["Draft a plan", "Refine the plan"]
    assert second["state"]["run_count"] == 2


def test_missing_session_id_is_generated(client: TestClient) -> None:
    body = client.post("/v1/run_crew", json={"goal": "hello"}).json()
    assert len(body["federation_session_id"]) == 36


def test_offline_model_is_deterministic() -> None:
    from agent_wrapper.llm.offline import offline_answer

    prompt = [{"role": "system", "content": "You are Writer."},
              {"role": "user", "content": "Current Task: Same prompt"}]
    assert offline_answer(prompt) == offline_answer(list(prompt))
    assert "Writer on: Same prompt" in offline_answer(prompt)
    other = [prompt[0], {"role": "user", "content": "Current Task: Other prompt"}]
    assert offline_answer(other) != offline_answer(prompt)


def test_a_sessions_history_keeps_the_newest_runs_each_cut_to_size(make_client) -> None:
    client = make_client(history_max_runs=2, history_max_chars=100)
    for goal in ("first " + "x" * 300, "second", "third"):
        reply = client.post("/v1/run_crew", json={"goal": goal, "federation_session_id": "cap"})
        assert reply.status_code == 200, reply.text
    history = reply.json()["history"]
    assert [h["goal"][:6] for h in history] == ["second", "third"]
    assert all(len(h["output"]) <= 100 + len("… [9999 more chars]") for h in history)
    assert reply.json()["state"]["run_count"] == 3


def test_a_long_goal_is_cut_in_the_history_not_in_the_run(make_client) -> None:
    client = make_client(history_max_chars=100)
    reply = client.post("/v1/run_crew", json={"goal": "g" * 500, "federation_session_id": "cut"})
    entry = reply.json()["history"][-1]
    assert entry["goal"] == "g" * 100 + "… [400 more chars]"


def test_concurrent_crews_share_no_kickoff_log(client: TestClient, monkeypatch) -> None:
    """crewai's process-wide kickoff log (emptied by every kickoff, read whole by every
    task) is not used: crews of different sessions never touch each other's state."""
    from crewai.utilities.task_output_storage_handler import TaskOutputStorageHandler

    touched: list[str] = []
    for name in ("update", "add", "reset", "load"):
        monkeypatch.setattr(TaskOutputStorageHandler, name,
                            lambda self, *a, _name=name, **k: touched.append(_name))
    response = run(client, "Summarise WASM sandboxing", "crew-log-1")
    assert response.status_code == 200, response.text
    assert [s["name"] for s in response.json()["steps"]] == ["research", "write"]
    assert touched == []
