"""Slow and idle clients against a real wrapper process: a request head that never
completes and a connection that sends nothing are both closed; a prompt client is
served, also on a kept-alive connection."""

import socket
import time

import httpx


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_and_idle_connections_are_closed_prompt_ones_served(wrapper_process,
                                                                 tmp_path) -> None:
    wrapper = wrapper_process(AGENT_WRAPPER_HEADER_TIMEOUT_S="1",
                              AGENT_WRAPPER_STATE_DIR=str(tmp_path / "s"))
    slow = socket.create_connection(("127.0.0.1", wrapper.port))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
    idle = socket.create_connection(("127.0.0.1", wrapper.port))
    started = time.monotonic()
    assert _closed_within(slow, 5), "the slow-loris connection was closed"
    assert _closed_within(idle, 5), "the idle connection was closed"
    assert time.monotonic() - started < 4

    with httpx.Client(base_url=wrapper.url("")) as client:  # one kept-alive connection
        assert client.get("/healthz").status_code == 200
        time.sleep(0.3)
        assert client.get("/healthz").status_code == 200
