"""Who may call the wrapper: the host's credential on every /v1 route (health stays
open), and sessions owned by the principal of their first request, for every route that
touches a session (run, resume, stream, status, cancel)."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_wrapper.core.config import Settings
from agent_wrapper.main import create_app

SECRET = "s3cret-host-credential-0123456789"
HOST = {"x-federation-host-credential": SECRET}


def as_principal(name: str) -> dict[str, str]:
    return {**HOST, "x-federation-principal": name}


@pytest.fixture
def guarded(make_client, tmp_path: Path) -> TestClient:
    secret_file = tmp_path / "host-credential"
    secret_file.write_text(SECRET + "\n")
    return make_client(host_credential_file=secret_file)


@pytest.mark.parametrize("method, path", [
    ("post", "/v1/run_graph"), ("post", "/v1/run_crew"), ("get", "/v1/agents"),
    ("get", "/v1/sessions/s-1/runs/r-1"), ("post", "/v1/sessions/s-1/runs/r-1/cancel"),
    ("get", "/v1/sessions/s-1/runs/r-1/events"),
])
def test_every_v1_route_refuses_a_caller_without_the_host_credential(guarded, method, path):
    body = {"json": {"goal": "hi"}} if method == "post" else {}
    for headers in ({}, {"x-federation-host-credential": "wrong-credential-0123456789"},
                    {"x-federation-principal": "alice"}):
        reply = getattr(guarded, method)(path, headers=headers, **body)
        assert reply.status_code == 401, (headers, reply.text)
        assert reply.json()["error"]["code"] == "unauthenticated"
    assert guarded.get("/v1/agents", headers=HOST).status_code == 200


def test_health_stays_open_without_the_credential(guarded) -> None:
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/readyz").status_code == 200


def test_a_short_or_missing_credential_file_stops_the_start(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tooshort")
    with pytest.raises(ValueError, match="at least 16"):
        create_app(Settings(state_dir=tmp_path / "s", host_credential_file=short))
    with pytest.raises(ValueError, match="cannot read"):
        create_app(Settings(state_dir=tmp_path / "s", host_credential_file=tmp_path / "nope"))


def test_a_second_principal_cannot_touch_the_first_ones_session(guarded) -> None:
    body = {"goal": "alice's plan", "federation_session_id": "alice-1", "request_id": "r-1"}
    first = guarded.post("/v1/run_graph", json=body, headers=as_principal("alice"))
    assert first.status_code == 200, first.text

    attempts = {
        "run": lambda: guarded.post("/v1/run_graph", json={**body, "request_id": "r-2"},
                                    headers=as_principal("bob")),
        "replay": lambda: guarded.post("/v1/run_graph", json=body, headers=as_principal("bob")),
        "crew": lambda: guarded.post("/v1/run_crew", json={**body, "request_id": "r-3"},
                                     headers=as_principal("bob")),
        "resume": lambda: guarded.post("/v1/run_graph", json={
            "goal": "x", "federation_session_id": "alice-1", "resume": "yes"},
            headers=as_principal("bob")),
        "stream": lambda: guarded.post("/v1/run_graph", json={**body, "request_id": "r-4"},
                                       headers={**as_principal("bob"),
                                                "accept": "application/x-ndjson"}),
        "async": lambda: guarded.post("/v1/run_graph", json={**body, "request_id": "r-5"},
                                      headers={**as_principal("bob"),
                                               "prefer": "respond-async"}),
        "status": lambda: guarded.get("/v1/sessions/alice-1/runs/r-1",
                                      headers=as_principal("bob")),
        "cancel": lambda: guarded.post("/v1/sessions/alice-1/runs/r-1/cancel",
                                       headers=as_principal("bob")),
        "events": lambda: guarded.get("/v1/sessions/alice-1/runs/r-1/events",
                                      headers=as_principal("bob")),
    }
    for what, attempt in attempts.items():
        reply = attempt()
        assert reply.status_code == 403, (what, reply.text)
        assert reply.json()["error"]["code"] == "session_not_owned", what
        assert "alice's plan" not in reply.text

    # Nothing bob tried left a trace in alice's session.
    again = guarded.post("/v1/run_graph", json={**body, "request_id": "r-6"},
                         headers=as_principal("alice"))
    assert again.status_code == 200, again.text
    assert [h["goal"] for h in again.json()["history"]] == ["alice's plan", "alice's plan"]
    status = guarded.get("/v1/sessions/alice-1/runs/r-1", headers=as_principal("alice"))
    assert status.status_code == 200 and status.json()["status"] == "completed"


def test_an_unknown_run_in_an_unowned_session_is_not_found(guarded) -> None:
    reply = guarded.get("/v1/sessions/nobody/runs/r-1", headers=as_principal("bob"))
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "run_not_found"


def test_a_malformed_principal_is_refused(guarded) -> None:
    reply = guarded.post("/v1/run_graph", json={"goal": "hi"},
                         headers={**HOST, "x-federation-principal": "two words"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "bad_request"


def test_without_a_credential_the_principal_header_still_separates_sessions(client) -> None:
    # A wrapper without a credential (development) still keeps sessions apart by the
    # principal the host names; the docs say why that is no defence on its own.
    body = {"goal": "mine", "federation_session_id": "dev-1"}
    assert client.post("/v1/run_graph", json=body,
                       headers={"x-federation-principal": "alice"}).status_code == 200
    reply = client.post("/v1/run_graph", json=body)
    assert reply.status_code == 403, reply.text
    assert json.loads(reply.text)["error"]["code"] == "session_not_owned"
