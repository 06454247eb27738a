"""Several worker processes behind one port (AGENT_WRAPPER_WORKERS): both serve, they
share sessions through the store, and they die with the wrapper."""

import os
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ATTEMPTS = 12  # batches of concurrent requests before giving up on seeing both workers


def holders(db: Path) -> dict[str, str]:
    """session -> the worker process (``host:pid``) that last held its lease."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT session_id, holder FROM federation_locks"))


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def run_graph(url: str, session: str, goal: str) -> dict:
    # A new connection per request: the kernel hands it to whichever worker accepts.
    reply = httpx.post(url, json={"goal": goal, "federation_session_id": session},
                       headers={"connection": "close"}, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_two_workers_serve_one_port_and_share_sessions(wrapper_process, tmp_path) -> None:
    state = tmp_path / "s"
    wrapper = wrapper_process(AGENT_WRAPPER_WORKERS="2", AGENT_WRAPPER_STORE="sqlite",
                              AGENT_WRAPPER_STATE_DIR=str(state),
                              # Runs overlap, so both workers are asked to accept.
                              AGENT_WRAPPER_TEST_STEP_DELAY_MS="100")
    url = wrapper.url("/v1/run_graph")
    db = state / "federation.db"
    with ThreadPoolExecutor(8) as pool:
        for batch in range(ATTEMPTS):
            list(pool.map(lambda i, b=batch: run_graph(url, f"w-{b}-{i}", "hello"), range(8)))
            if len(set(holders(db).values())) == 2:
                break
    workers = set(holders(db).values())
    assert len(workers) == 2, f"one worker served everything: {workers}"
    # A holder is "<host>:<pid>-<start ticks>-<boot id>" (store/process_identity.py).
    pids = {int(holder.rpartition(":")[2].partition("-")[0]) for holder in workers}
    assert wrapper.proc.pid not in pids, "the workers are processes of their own"

    # One session, continued by whichever worker takes each request: every run is in
    # its history, and both workers ran it.
    seen: set[str] = set()
    replies = []
    for turn in range(ATTEMPTS * 4):
        replies.append(run_graph(url, "shared", f"turn {turn}"))
        seen.add(holders(db)["shared"])
        if len(seen) == 2:
            break
    assert len(seen) == 2, "every turn landed on the same worker"
    assert [h["goal"] for h in replies[-1]["history"]] == [f"turn {i}"
                                                           for i in range(len(replies))]
    assert all(r["resumed"] for r in replies[1:])

    # A killed wrapper leaves no worker behind holding the port.
    os.kill(wrapper.proc.pid, signal.SIGKILL)
    wrapper.proc.wait(timeout=10)
    for pid in pids:
        for _ in range(300):  # a bound on waiting, not a timing assertion
            if not alive(pid):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"worker {pid} outlived the wrapper")
