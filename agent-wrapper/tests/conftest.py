"""Shared fixtures: the real app over HTTP (TestClient), an in-memory span exporter,
a real redis-server, and real wrapper processes for crash tests."""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_wrapper.core.config import Settings
from agent_wrapper.main import create_app

# One exporter per process: the tracer provider (and the framework instrumentors)
# are process-wide, so every app built by the tests shares it.
SPANS = InMemorySpanExporter()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def spans() -> InMemorySpanExporter:
    SPANS.clear()
    return SPANS


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Builds a TestClient for an app with the given settings (file store in tmp)."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        values = {"state_dir": "state", **overrides}
        # Relative state dirs live in the test's own tmp directory.
        values["state_dir"] = tmp_path / str(values["state_dir"])
        client = TestClient(create_app(Settings(**values), span_exporter=SPANS),
                            raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: $AGENT_WRAPPER_TEST_REDIS_URL, or a redis-server started here."""
    if url := os.environ.get("AGENT_WRAPPER_TEST_REDIS_URL"):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required in CI (scripts/test.sh installs it)")
        pytest.skip("redis-server not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    pidfile = workdir / "redis.pid"
    subprocess.run([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--daemonize", "yes", "--pidfile", str(pidfile),
                    "--dir", str(workdir)], check=True)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    yield url
    for _ in range(50):
        if pidfile.exists():
            break
        time.sleep(0.05)
    os.kill(int(pidfile.read_text().strip()), 15)


class WrapperProcess:
    """A real wrapper (uvicorn) as a child process, started and stopped by pid."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        full_env = {**os.environ, **env, "OTEL_TRACES_EXPORTER": "none"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent_wrapper", "--host", "127.0.0.1", "--port",
             str(self.port)],
            env=full_env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wrapper exited early:\n{log.read_text()}")
            try:
                if httpx.get(self.url("/healthz"), timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"wrapper did not start:\n{log.read_text()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def wrapper_process(tmp_path: Path) -> Iterator[Callable[..., WrapperProcess]]:
    started: list[WrapperProcess] = []

    def start(**env: str) -> WrapperProcess:
        process = WrapperProcess(env, tmp_path / "wrapper.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
