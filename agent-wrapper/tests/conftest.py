"""Shared fixtures: the real app over HTTP (TestClient, or a real uvicorn server in a
thread for streaming), an in-memory span exporter, a real redis-server, real wrapper
processes for crash tests, and a step gate that holds a run at a step boundary."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_wrapper.core.config import Settings
from agent_wrapper.main import create_app
from agent_wrapper.metrics import setup_metrics
from agent_wrapper.runs import Boundary, StepHook

# The fixture projects of the "own agents" tests: a classic and a JSON crew, a graph
# given as a factory and a graph with a tool node and an interrupt.
FIXTURE_AGENTS = Path(__file__).parent / "fixtures" / "agents" / "agents.toml"

# One exporter per process: the tracer provider (and the framework instrumentors)
# are process-wide, so every app built by the tests shares it. The same for metrics.
SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()
setup_metrics(METRICS)  # before any app: whichever test builds the first one


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def spans() -> InMemorySpanExporter:
    SPANS.clear()
    return SPANS


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., FastAPI]:
    """Builds an app with the given settings (file store in tmp) and step hook."""

    def make(step_hook: StepHook | None = None, **overrides: object) -> FastAPI:
        values = {"state_dir": "state", **overrides}
        # Relative state dirs live in the test's own tmp directory.
        values["state_dir"] = tmp_path / str(values["state_dir"])
        return create_app(Settings(**values), span_exporter=SPANS, step_hook=step_hook,
                          metric_reader=METRICS)

    return make


@pytest.fixture
def make_client(make_app: Callable[..., FastAPI]) -> Iterator[Callable[..., TestClient]]:
    """Builds a TestClient for an app with the given settings (file store in tmp)."""
    clients: list[TestClient] = []

    def make(step_hook: StepHook | None = None, **overrides: object) -> TestClient:
        client = TestClient(make_app(step_hook, **overrides), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """Serves an app with a real uvicorn in a thread (TestClient buffers whole
    responses, so streaming needs a real server); returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(30)


class StepGate:
    """A step hook that holds the run at the first boundary matching ``kind`` (and
    ``name``) until the test releases it, so a test can act "mid-run" without
    timing assumptions. ``reached`` is set when the run is held there."""

    def __init__(self, kind: str = "checkpoint", name: str | None = None,
                 wait_s: float = 30.0) -> None:
        self.kind, self.name, self.wait_s = kind, name, wait_s
        self.reached = threading.Event()
        self.released = threading.Event()
        self.timed_out = False
        self.boundaries: list[Boundary] = []
        self.action: Callable[[Boundary], None] | None = None

    def __call__(self, boundary: Boundary) -> None:
        self.boundaries.append(boundary)
        if self.reached.is_set() or boundary.kind != self.kind:
            return
        if self.name is not None and boundary.name != self.name:
            return
        self.reached.set()
        if self.action is not None:
            self.action(boundary)
            return
        if not self.released.wait(self.wait_s):
            self.timed_out = True

    def wait_reached(self, timeout: float = 60.0) -> None:
        assert self.reached.wait(timeout), "the run never reached the gate"

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def gate(make_client: object, serve: object) -> Iterator[StepGate]:
    # Depends on the app fixtures so that it is torn down first: a run held here
    # is released before the apps shut down (and wait for their runs).
    held = StepGate()
    yield held
    held.release()  # never leave a run blocked behind a failed test


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


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL: $AGENT_WRAPPER_TEST_DATABASE_URL, or a server initdb'd and
    started here on a free loopback port (as the ``postgres`` user when run as root,
    since postgres refuses to run as root), stopped at the end of the session."""
    if url := os.environ.get("AGENT_WRAPPER_TEST_DATABASE_URL"):
        yield url
        return
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required in CI (scripts/test.sh installs it)")
        pytest.skip("PostgreSQL server binaries not installed")
    # Not under pytest's tmp dir: that is private to root, and the server's user must
    # reach its data directory.
    data = Path(tempfile.mkdtemp(prefix="federation-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data / "db"), "-U", "federation",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(data / "db"), "-l", str(data / "log"), "-w",
                    "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {data} "
                          "-c fsync=on -c max_connections=200", "start"],
                   check=True, capture_output=True)
    # -l again on restart: else the server's output goes to pg_ctl's (captured) stdout
    # and the pipe never closes.
    _POSTGRES.update(pg_ctl=[*as_user, pg_ctl, "-D", str(data / "db"), "-l", str(data / "log")])
    try:
        yield f"postgresql://federation@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


_POSTGRES: dict[str, list[str]] = {}


def restart_postgres() -> None:
    """Restart the test server in place (same port, same data): every connection drops."""
    subprocess.run([*_POSTGRES["pg_ctl"], "-m", "fast", "-w", "restart"], check=True,
                   capture_output=True)


def fresh_database(base_url: str) -> str:
    """A new, empty database on the test server (one per test: no shared tables)."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base_url.rsplit("/", 1)[0] + f"/{name}"


class WrapperProcess:
    """A real wrapper (uvicorn) as a child process, started and stopped by pid."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        full_env = {**os.environ, "OTEL_TRACES_EXPORTER": "none",
                    "OTEL_METRICS_EXPORTER": "none", **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent_wrapper", "--host", "127.0.0.1", "--port",
             str(self.port)],
            env=full_env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        # Generous: importing crewai took ~110 s with the machine's 2 cores shared by
        # several test runs; a wrapper that fails exits early (checked below).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wrapper exited early:\n{log.read_text()}")
            try:
                if httpx.get(self.url("/healthz"), timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        # Not left running (with its workers and their queue pollers) behind the test.
        self.stop()
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
