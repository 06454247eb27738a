"""ASGI middleware enforcing the request body size limit before anything parses it.

A declared ``Content-Length`` above the limit is refused at once; otherwise the
body (also a chunked one) is read up to the limit and replayed to the app, so
an oversized body never reaches JSON parsing.
"""

import json
from typing import Any

from agent_wrapper.contract import JSON, ErrorCode, error_body

Scope = dict[str, Any]


class BodyLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reply(self, send: Any, code: ErrorCode, message: str) -> None:
        body = json.dumps(error_body(code, message)).encode()
        await send({"type": "http.response.start", "status": code.http_status,
                    "headers": [(b"content-type", JSON.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = f"request body exceeds {self.max_bytes} bytes"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await self._reply(send, ErrorCode.BAD_REQUEST, "invalid Content-Length")
                return
            if length > self.max_bytes:
                await self._reply(send, ErrorCode.PAYLOAD_TOO_LARGE, too_large)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._reply(send, ErrorCode.PAYLOAD_TOO_LARGE, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
