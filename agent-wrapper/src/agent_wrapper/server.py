"""The HTTP server's connection guard: uvicorn closes idle keep-alive connections, but
not a connection that never finishes a request head. 200 slow-loris sockets and 1,000
idle connections all stayed open; ``GuardedH11Protocol`` gives every request head a
deadline (from the connection's start, or from the previous response), and closes the
connection when it passes."""

import asyncio
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# Seconds a client has to send a complete request line and headers.
HEADER_TIMEOUT_S = 10.0


class GuardedH11Protocol(H11Protocol):
    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a whole request head has arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.logger.info("closing a connection that sent no complete request in %.0f s",
                             self.header_timeout_s)
            self.transport.close()


class EnvGuardedH11Protocol(GuardedH11Protocol):
    """The guarded protocol for worker processes: uvicorn imports it by name in each
    worker (a class made at run time cannot be sent to one), and it reads its deadline
    from ``AGENT_WRAPPER_HEADER_TIMEOUT_S`` there."""

    header_timeout_s = float(os.environ.get("AGENT_WRAPPER_HEADER_TIMEOUT_S",
                                            HEADER_TIMEOUT_S))


def guarded_protocol(header_timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol class with the configured deadline (uvicorn instantiates it)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"header_timeout_s": header_timeout_s})
