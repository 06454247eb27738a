"""End-to-end benchmark: what a user feels, side by side in one interleaved run.

Three ways to run the built-in crew and graph:

* ``direct``: the framework in this process, no federation (the registry's built-in
  agent, the same offline model, ``graph.invoke`` / ``crew.kickoff``, no store);
* ``wrapper``: ``POST /v1/run_crew`` / ``/v1/run_graph`` over HTTP;
* ``host``: ``RunAgentTask`` over gRPC to a release ``agent-federation serve``, whose
  WASM adapter calls the same wrapper.

Sequential (offline model, warm): p50/p90 per target, interleaved ``--rounds`` times
(min/median/max of the per-round p50s). Concurrent: N tasks at once against a fake
OpenAI-compatible LLM answering after ``--llm-latency`` s (``fake-llm`` below, its own
process), through the wrapper and the host, and against a single-process peer (the same
crew/graph on plain threads in one process, one shared LLM client): wall time, tasks/s,
the ideal wall time, peak RSS and threads of the serving processes, CPU ms per task.

Run by ``scripts/bench.sh e2e`` (which builds the release host and adapters);
``python bench/e2e.py --help`` for the knobs. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WRAPPER_SRC = HERE.parent / "src"
REPO = HERE.parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
CREW_ANSWER = "Thought: I now know the final answer\nFinal Answer: {text}"

for name in ("CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_VERSION_CHECK"):
    os.environ.setdefault(name, "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the fake OpenAI-compatible LLM ----------------------------------------------------
def fake_llm_main(port: int, latency: float) -> None:
    """Answers every chat completion after ``latency`` seconds, in CrewAI's final-answer
    form (a graph takes it as plain text). asyncio: thousands of waits cost nothing."""
    from aiohttp import web

    counter = {"n": 0}

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        counter["n"] += 1
        await asyncio.sleep(latency)
        text = CREW_ANSWER.format(text=f"answer {counter['n']} to {len(body['messages'])} "
                                       "messages")
        return web.json_response({
            "id": f"chatcmpl-{counter['n']}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    web.run_app(app, host="127.0.0.1", port=port, print=None, backlog=4096,
                access_log=None)


# -- processes and their footprint -------------------------------------------------------
def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (uvicorn workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return out


def footprint(pids: list[int]) -> tuple[int, int, float]:
    """(RSS bytes, threads, CPU seconds) summed over ``pids``."""
    rss = threads = 0
    cpu = 0.0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads += int(line.split()[1])
        cpu += (int(stat[11]) + int(stat[12])) / CLK_TCK
    return rss, threads, cpu


class Sampler:
    """Peak RSS and threads of some process trees while a block runs, and their CPU."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.peak_rss = self.peak_threads = 0
        self._stop = threading.Event()

    def pids(self) -> list[int]:
        return [p for root in self.roots for p in descendants(root)]

    def __enter__(self) -> Sampler:
        self.base_rss, _, self.cpu0 = footprint(self.pids())
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            rss, threads, _ = footprint(self.pids())
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_threads = max(self.peak_threads, threads)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        rss, threads, self.cpu = footprint(self.pids())
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_threads = max(self.peak_threads, threads)
        self.cpu -= self.cpu0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def wait_http(port: int, path: str, proc: Proc, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"{proc.name} exited; see {proc.log}:\n{proc.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{proc.name} did not come up; see {proc.log}")


def start_wrapper(work: Path, name: str, env: dict[str, str]) -> tuple[Proc, int]:
    port = free_port()
    log = work / f"{name}.log"
    full = {**os.environ, "PYTHONPATH": str(WRAPPER_SRC), "AGENT_WRAPPER_STORE": "sqlite",
            "AGENT_WRAPPER_STATE_DIR": str(work / f"{name}-state"),
            "AGENT_WRAPPER_MAX_CONNECTIONS": "4000", **env}
    popen = subprocess.Popen([sys.executable, "-m", "agent_wrapper", "--port", str(port)],
                             env=full, stdout=log.open("w"), stderr=subprocess.STDOUT,
                             start_new_session=True)
    proc = Proc(name, popen, log)
    wait_http(port, "/healthz", proc)
    return proc, port


def start_host(work: Path, name: str, host_bin: str, wrapper_port: int) -> tuple[Proc, str]:
    log = work / f"{name}.log"
    popen = subprocess.Popen(
        [host_bin, "serve", "--listen", "127.0.0.1:0", "--wrapper-url",
         f"http://127.0.0.1:{wrapper_port}", "--adapters-dir", str(REPO / "dist/adapters"),
         "--compile-cache-dir", str(work / "compile-cache")],
        env={**os.environ, "FEDERATION_MAX_CONCURRENT_REQUESTS": "4096",
             "FEDERATION_MAX_CONCURRENT_TASKS": "4096", "RUST_LOG": "warn"},
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, start_new_session=True)
    proc = Proc(name, popen, log)
    assert popen.stdout is not None
    for line in popen.stdout:
        if "agent-federation listening on " in line:
            addr = line.split("agent-federation listening on ", 1)[1].split()[0]
            threading.Thread(target=lambda: [None for _ in popen.stdout], daemon=True).start()
            return proc, addr
    raise SystemExit(f"host did not start; see {log}:\n{log.read_text()[-3000:]}")


# -- the gRPC request, encoded by hand (no generated stubs needed) -----------------------
def _field(number: int, value: str) -> bytes:
    data = value.encode()
    key = (number << 3) | 2
    out = bytearray([key])
    n = len(data)
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + data


def task_request(goal: str, session: str, backend: str, request_id: str) -> bytes:
    """federation.v1.TaskRequest: goal=1, federation_session_id=4, backend=5,
    request_id=6."""
    return (_field(1, goal) + _field(4, session) + _field(5, backend) + _field(6, request_id))


RUN_METHOD = "/federation.v1.FederationService/RunAgentTask"
ROUTES = {"crew": "/v1/run_crew", "graph": "/v1/run_graph"}
BACKENDS = {"crew": "crewai", "graph": "langgraph"}


def body(goal: str) -> dict[str, Any]:
    return {"goal": goal, "context": "bench", "input_data": {"n": 1},
            "federation_session_id": f"bench-{uuid.uuid4().hex}",
            "request_id": uuid.uuid4().hex}


# -- direct: the framework in this process -----------------------------------------------
class Direct:
    """The registry's built-in crew and graph run in this process with no federation:
    no store, no run record, no HTTP. ``llm``: None for the offline model, or the
    (base_url, model) of an OpenAI-compatible endpoint, one client shared by all runs."""

    def __init__(self, llm: tuple[str, str] | None = None) -> None:
        sys.path.insert(0, str(WRAPPER_SRC))
        from agent_wrapper.agents import load_registry
        from agent_wrapper.core.config import Settings
        from agent_wrapper.llm import LLMFactory

        if llm is None:
            settings = Settings(llm_provider="offline")
        else:
            settings = Settings(llm_provider="openai", llm_base_url=llm[0], llm_model=llm[1])
        self.factory = LLMFactory(settings)
        self.registry = load_registry(None)
        self.shared = llm is not None
        if self.shared:  # a developer's process builds its clients once
            bundle = self.factory.bundle()
            self._crew_llm = self.factory.crewai_llm(bundle)
            self._chat = self.factory.chat_model(bundle)

    def run(self, kind: str, goal: str) -> str:
        from agent_wrapper.frameworks.crewai import _use_llm
        from agent_wrapper.models import RunRequest

        request = RunRequest.model_validate(body(goal))
        bundle = self.factory.bundle()
        if kind == "graph":
            from langgraph.checkpoint.memory import InMemorySaver

            agent = self.registry.resolve("langgraph", None)
            chat = self._chat if self.shared else self.factory.chat_model(bundle)
            config = {"configurable": {"thread_id": request.federation_session_id,
                                       "model": chat}}
            graph = agent.make(config).copy(update={"checkpointer": InMemorySaver()})
            result = graph.invoke(agent.graph_input(request.goal, request.context,
                                                    request.input_data), config)
            return str(result["answer"])
        agent = self.registry.resolve("crewai", None)
        llm = self._crew_llm if self.shared else self.factory.crewai_llm(bundle)

        class _Session:  # the built-in crew reads the session's history only
            history: list = []

        crew = agent.build(request, _Session(), llm)
        _use_llm(crew, llm)
        return str(crew.kickoff(inputs=agent.inputs(request)).raw)


def peer_main(args: argparse.Namespace) -> None:
    """The single-process peer: N runs on ``--pool`` plain threads; prints JSON."""
    direct = Direct((args.llm_url, "fake-model"))
    direct.run(args.kind, "warm up")  # imports and first-call costs are not the load
    with ThreadPoolExecutor(args.pool) as pool:
        cpu0 = sum(os.times()[:2])
        start = time.perf_counter()
        results = list(pool.map(lambda i: direct.run(args.kind, f"goal {i}"), range(args.n)))
        wall = time.perf_counter() - start
        cpu = sum(os.times()[:2]) - cpu0
    assert all(results)
    print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)
    sys.stdin.readline()  # the driver reads our footprint, then lets us go


# -- clients -------------------------------------------------------------------------------
class Clients:
    def __init__(self, wrapper_port: int, host_addr: str) -> None:
        import grpc
        import httpx

        self.http = httpx.Client(base_url=f"http://127.0.0.1:{wrapper_port}", timeout=600)
        self.channel = grpc.insecure_channel(host_addr)
        self.grpc_run = self.channel.unary_unary(RUN_METHOD, request_serializer=None,
                                                 response_deserializer=None)
        self.wrapper_port, self.host_addr = wrapper_port, host_addr

    def via_wrapper(self, kind: str, goal: str) -> None:
        reply = self.http.post(ROUTES[kind], json=body(goal))
        if reply.status_code != 200:
            raise RuntimeError(f"wrapper {reply.status_code}: {reply.text[:300]}")

    def via_host(self, kind: str, goal: str) -> None:
        b = body(goal)
        self.grpc_run(task_request(goal, b["federation_session_id"], BACKENDS[kind],
                                   b["request_id"]), timeout=600)


# Warm-up tasks sent at once before a burst: several, so that every wrapper worker
# process (each takes the connections it accepts) has run one.
WARM_TASKS = 8


async def warm(one: Any) -> None:
    await asyncio.gather(*(one(-1 - k) for k in range(WARM_TASKS)))


async def burst_wrapper(port: int, kind: str, n: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600,
                                 limits=limits) as client:
        async def one(i: int) -> None:
            reply = await client.post(ROUTES[kind], json=body(f"goal {i}"))
            if reply.status_code != 200:
                raise RuntimeError(f"wrapper {reply.status_code}: {reply.text[:300]}")

        await warm(one)
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start


async def burst_host(addr: str, kind: str, n: int) -> float:
    import grpc

    async with grpc.aio.insecure_channel(addr) as channel:
        run = channel.unary_unary(RUN_METHOD)

        async def one(i: int) -> None:
            b = body(f"goal {i}")
            await run(task_request(b["goal"], b["federation_session_id"], BACKENDS[kind],
                                   b["request_id"]), timeout=600)

        await warm(one)
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start


# -- the driver ------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """median [min-max] of per-round figures."""
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


@dataclass
class Env:
    work: Path
    host_bin: str
    workers: int
    max_runs: int
    procs: list[Proc] = field(default_factory=list)

    def stack(self, name: str, env: dict[str, str]) -> tuple[Proc, int, Proc, str]:
        env = {"AGENT_WRAPPER_WORKERS": str(self.workers),
               "AGENT_WRAPPER_MAX_RUNS": str(self.max_runs), **env}
        wrapper, port = start_wrapper(self.work, f"wrapper-{name}", env)
        self.procs.append(wrapper)
        host, addr = start_host(self.work, f"host-{name}", self.host_bin, port)
        self.procs.append(host)
        return wrapper, port, host, addr

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def sequential(env: Env, args: argparse.Namespace) -> None:
    wrapper, port, host, addr = env.stack("offline", {"AGENT_WRAPPER_LLM_PROVIDER": "offline"})
    clients = Clients(port, addr)
    direct = Direct()
    targets = {"direct": direct.run, "wrapper": clients.via_wrapper, "host": clients.via_host}
    kinds = args.kinds
    for kind in kinds:  # warm every path (imports, adapter instances, connections)
        for call in targets.values():
            for i in range(args.warmup):
                call(kind, f"warm {i}")
    p50: dict[tuple[str, str], list[float]] = {}
    p90: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for kind in kinds:
            for target, call in targets.items():
                times = []
                for i in range(args.iterations):
                    start = time.perf_counter()
                    call(kind, f"goal {i}")
                    times.append((time.perf_counter() - start) * 1000)
                p50.setdefault((kind, target), []).append(statistics.median(times))
                p90.setdefault((kind, target), []).append(pct(times, 0.9))
    print(f"\n## Sequential, warm, offline model ({args.iterations} runs x {args.rounds} "
          "interleaved rounds; median [min-max] of the rounds' figures)\n")
    print("| framework | target | p50 ms | p90 ms | p50 over direct | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        base = p50[(kind, "direct")]
        for target in targets:
            mine = p50[(kind, target)]
            extra = [m - b for m, b in zip(mine, base, strict=True)]
            ratio = [m / b for m, b in zip(mine, base, strict=True)]
            over = "-" if target == "direct" else spread(extra, "{:+.1f}")
            rat = "-" if target == "direct" else spread(ratio, "{:.2f}x")
            print(f"| {kind} | {target} | {spread(mine)} | {spread(p90[(kind, target)])} | "
                  f"{over} | {rat} |")
    sys.stdout.flush()
    clients.http.close()
    clients.channel.close()
    for proc in (host, wrapper):
        proc.stop()


def concurrent(env: Env, args: argparse.Namespace) -> None:
    llm_port = free_port()
    llm_log = env.work / "fake-llm.log"
    llm = Proc("fake-llm", subprocess.Popen(
        [sys.executable, __file__, "fake-llm", "--port", str(llm_port), "--latency",
         str(args.llm_latency)], stdout=llm_log.open("w"), stderr=subprocess.STDOUT),
        llm_log)
    env.procs.append(llm)
    llm_url = f"http://127.0.0.1:{llm_port}/v1"
    wrapper, port, host, addr = env.stack("openai", {
        "AGENT_WRAPPER_LLM_PROVIDER": "openai", "AGENT_WRAPPER_LLM_BASE_URL": llm_url,
        "AGENT_WRAPPER_LLM_MODEL": "fake-model", "AGENT_WRAPPER_LLM_MAX_RETRIES": "0"})
    slots = env.workers * env.max_runs
    print(f"\n## Concurrent, fake OpenAI-compatible LLM answering in {args.llm_latency:.1f} s "
          f"(wrapper: {env.workers} worker processes x {env.max_runs} run slots; peer: one "
          f"process, {slots} threads; median [min-max] of {args.rounds} rounds)\n")
    print("| framework | N | target | wall s | tasks/s | ideal s | peak RSS MiB | "
          "RSS/run KiB | threads | CPU ms/task |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    sys.stdout.flush()
    for kind in args.kinds:
        peer_baseline(kind, llm_url)
        calls = 2  # two LLM calls per run (plan+respond; researcher+writer)
        for n in args.n:
            ideal = math.ceil(n / slots) * calls * args.llm_latency
            rows: dict[str, list[tuple[float, int, int, int, float]]] = {}
            for _ in range(args.rounds):
                for target in ("peer", "wrapper", "host"):
                    rows.setdefault(target, []).append(
                        burst(target, kind, n, slots, llm_url, wrapper, port, host, addr))
            for target, runs in rows.items():
                walls = [r[0] for r in runs]
                print(f"| {kind} | {n} | {target} | {spread(walls, '{:.2f}')} | "
                      f"{spread([n / w for w in walls])} | {ideal:.1f} | "
                      f"{spread([r[1] / 2**20 for r in runs], '{:.0f}')} | "
                      f"{spread([r[2] / 1024 / n for r in runs], '{:.0f}')} | "
                      f"{spread([r[3] for r in runs], '{:.0f}')} | "
                      f"{spread([r[4] * 1000 / n for r in runs], '{:.1f}')} |")
                sys.stdout.flush()


def burst(target: str, kind: str, n: int, slots: int, llm_url: str, wrapper: Proc,
          port: int, host: Proc, addr: str) -> tuple[float, int, int, int, float]:
    """One burst of N: (wall, peak RSS, RSS growth, peak threads, CPU s) of the
    processes serving it (peer: itself; wrapper: its workers; host: host + wrapper)."""
    if target == "peer":
        peer = subprocess.Popen(
            [sys.executable, __file__, "peer", "--kind", kind, "--n", str(n), "--pool",
             str(slots), "--llm-url", llm_url], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        assert peer.stdin is not None and peer.stdout is not None
        # The peer's own figures, sampled from outside while it runs.
        sampler = Sampler([peer.pid])
        sampler.__enter__()
        line = peer.stdout.readline()
        sampler.__exit__()
        peer.stdin.write("\n")
        peer.stdin.flush()
        peer.wait()
        figures = json.loads(line)
        # Growth: over a warmed peer that ran one task (``peer_baseline``); CPU: of the
        # burst only (the peer's start and imports are not the load).
        return (figures["wall"], sampler.peak_rss, sampler.peak_rss - PEER_BASE.get(kind, 0),
                sampler.peak_threads, figures["cpu"])
    roots = [wrapper.popen.pid] + ([host.popen.pid] if target == "host" else [])
    with Sampler(roots) as sampler:
        if target == "wrapper":
            wall = asyncio.run(burst_wrapper(port, kind, n))
        else:
            wall = asyncio.run(burst_host(addr, kind, n))
    return (wall, sampler.peak_rss, sampler.peak_rss - sampler.base_rss, sampler.peak_threads,
            sampler.cpu)


PEER_BASE: dict[str, int] = {}


def peer_baseline(kind: str, llm_url: str) -> None:
    """RSS of a peer process that has imported and warmed its framework but runs nothing
    concurrently (N=1), so RSS/run compares growth with growth."""
    peer = subprocess.Popen(
        [sys.executable, __file__, "peer", "--kind", kind, "--n", "1", "--pool", "1",
         "--llm-url", llm_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert peer.stdin is not None and peer.stdout is not None
    peer.stdout.readline()
    PEER_BASE[kind] = footprint([peer.pid])[0]
    peer.stdin.write("\n")
    peer.stdin.flush()
    peer.wait()


def main() -> None:
    import logging

    # crewai warns on every offline call that it estimates tokens: not bench output.
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    fake = sub.add_parser("fake-llm")
    fake.add_argument("--port", type=int, required=True)
    fake.add_argument("--latency", type=float, default=1.0)
    peer = sub.add_parser("peer")
    peer.add_argument("--kind", choices=["crew", "graph"], required=True)
    peer.add_argument("--n", type=int, required=True)
    peer.add_argument("--pool", type=int, required=True)
    peer.add_argument("--llm-url", required=True)
    parser.add_argument("--host-bin", default=os.environ.get("FEDERATION_BENCH_HOST_BIN"))
    parser.add_argument("--only", choices=["sequential", "concurrent"])
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=["crew", "graph"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")],
                        default=[10, 50, 200, 1000])
    parser.add_argument("--llm-latency", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-runs", type=int, default=None,
                        help="run slots per wrapper process (default: enough for "
                             "the largest N spread over the workers)")
    args = parser.parse_args()
    if args.command == "fake-llm":
        fake_llm_main(args.port, args.latency)
        return
    if args.command == "peer":
        peer_main(args)
        return
    if not args.host_bin:
        raise SystemExit("--host-bin (or FEDERATION_BENCH_HOST_BIN): the release host binary")
    max_runs = args.max_runs or math.ceil(max(args.n) / args.workers)
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"# agent-federation end-to-end benchmark: {cores} cores, load average "
          f"{load:.1f} at start, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="federation-e2e-bench-") as tmp:
        env = Env(Path(tmp), args.host_bin, args.workers, max_runs)
        try:
            if args.only in (None, "sequential"):
                sequential(env, args)
            if args.only in (None, "concurrent"):
                concurrent(env, args)
        finally:
            env.close()
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
