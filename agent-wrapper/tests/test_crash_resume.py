"""A wrapper killed between two steps resumes on the next request with the same
session without redoing finished steps, with every store (SQLite, PostgreSQL, file,
Redis). The retry
carries the same request_id (as the host's retries do): it finds the dead run's record
still "working", sees that nobody holds the session lock any more and takes it over."""

import time

import httpx
import pytest

REQUEST = {"goal": "Survive a crash", "context": "checkpoints", "input_data": {"n": 1},
           "request_id": "crash-req"}


@pytest.fixture(params=["sqlite", "postgres", "file", "redis"])
def store_env(request: pytest.FixtureRequest, tmp_path) -> dict[str, str]:
    if request.param in ("sqlite", "file"):
        return {"AGENT_WRAPPER_STORE": request.param,
                "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "s")}
    if request.param == "postgres":
        # Two worker processes on one PostgreSQL: the dead one's lease (30 s TTL) is
        # free at once because its pid is gone.
        from tests.conftest import fresh_database

        return {"AGENT_WRAPPER_STORE": "postgres", "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "s"),
                "AGENT_WRAPPER_DATABASE_URL": fresh_database(
                    request.getfixturevalue("postgres_url"))}
    # A crashed replica's session lock lives until its TTL: keep it short here.
    return {"AGENT_WRAPPER_STORE": "redis", "AGENT_WRAPPER_LOCK_TTL_MS": "1000",
            "AGENT_WRAPPER_REDIS_URL": request.getfixturevalue("redis_url"),
            "AGENT_WRAPPER_REDIS_KEY_PREFIX": f"crash-{tmp_path.name}",
            "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "s")}


@pytest.mark.parametrize("route, first_step", [("/v1/run_crew", "research"),
                                               ("/v1/run_graph", "plan")])
def test_killed_mid_run_resumes_without_redoing_steps(wrapper_process, store_env, route,
                                                       first_step) -> None:
    body = {**REQUEST, "federation_session_id": "crash-1"}
    crashing = wrapper_process(**store_env, AGENT_WRAPPER_TEST_CRASH_AFTER_STEP="1")
    with pytest.raises(httpx.HTTPError):
        httpx.post(crashing.url(route), json=body, timeout=60)
    assert crashing.proc.wait(timeout=30) == 17, "died at the fault-injection point"

    healthy = wrapper_process(**store_env)
    # With Redis the dead run's lock answers 409 until its TTL passes.
    deadline = time.monotonic() + 20
    while True:
        response = httpx.post(healthy.url(route), json=body, timeout=60)
        if response.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    reply = response.json()
    steps = reply["steps"]
    assert steps[0]["name"] == first_step
    assert steps[0]["resumed_from_checkpoint"] is True
    assert steps[1]["resumed_from_checkpoint"] is False
    assert reply["resumed"] is True
    assert [h["goal"] for h in reply["history"]] == ["Survive a crash"]
    record = httpx.get(healthy.url("/v1/sessions/crash-1/runs/crash-req"), timeout=10).json()
    assert (record["status"], record["attempt"]) == ("completed", 2)
    # Only the unfinished step called the model.
    assert record["progress"]["llm_calls"] == 1
    if store_env["AGENT_WRAPPER_STORE"] in ("sqlite", "postgres"):
        # The durable queue: the new worker took the dead worker's run by itself; the
        # retry only waited for it.
        assert response.headers["x-agent-wrapper-replayed"] == "true"
    else:
        assert response.headers["x-agent-wrapper-llm-calls"] == "1"


@pytest.mark.parametrize("route, agent, input_data, done_before, llm_calls_left, status", [
    # The counter's task (tool call + answer: 2 LLM calls) is checkpointed; only the
    # reporter's task (1 call) runs again.
    ("/v1/run_crew", "word_crew", {"topic": "cats", "text": "a b c", "audience": "kids"},
     ["count_task"], "1", "completed"),
    # research (1 call, asks for the tool) is checkpointed; tools runs no model,
    # research answers (1 call), approve stops at its interrupt.
    ("/v1/run_graph", "approval", {"amount": 9}, ["research"], "1", "input_required"),
])
def test_a_user_agent_killed_mid_run_resumes_only_its_unfinished_steps(
        wrapper_process, tmp_path, route, agent, input_data, done_before, llm_calls_left,
        status) -> None:
    from tests.conftest import FIXTURE_AGENTS

    env = {"AGENT_WRAPPER_STORE": "file", "AGENT_WRAPPER_STATE_DIR": str(tmp_path / "s"),
           "AGENT_WRAPPER_AGENTS_FILE": str(FIXTURE_AGENTS)}
    body = {"goal": "France", "agent": agent, "input_data": input_data,
            "federation_session_id": f"crash-{agent}", "request_id": "c-1"}
    crashing = wrapper_process(**env, AGENT_WRAPPER_TEST_CRASH_AFTER_STEP="1")
    with pytest.raises(httpx.HTTPError):
        httpx.post(crashing.url(route), json=body, timeout=60)
    assert crashing.proc.wait(timeout=30) == 17, "died at the fault-injection point"

    healthy = wrapper_process(**env)
    response = httpx.post(healthy.url(route), json=body, timeout=60)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["status"] == status and reply["agent"] == agent
    resumed = [s["name"] for s in reply["steps"] if s["resumed_from_checkpoint"]]
    assert resumed == done_before
    assert response.headers["x-agent-wrapper-llm-calls"] == llm_calls_left
