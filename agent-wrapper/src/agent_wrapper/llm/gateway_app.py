"""The gateway's HTTP surface (``gateway.py``): OpenAI's chat completions API on
loopback, answering with OpenAI's error shape so every SDK reports a refusal clearly.

* ``POST /v1/chat/completions``: a run on the platform's model gets the configured
  model's answer (``stream: true`` as server-sent events); an ``own`` run's call is
  passed through to its own upstream.
* any other ``/v1/...`` path: passed through for an ``own`` run; 404 otherwise (the
  platform's model serves chat completions only).

Every call needs the process token (401) and must come from a run (403).
"""

import json
from typing import Any

import httpx
from opentelemetry import context as otel_context
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_wrapper.core.errors import WrapperError
from agent_wrapper.llm import gateway as gw

# Hop-by-hop and per-connection headers a pass-through must not copy.
_NOT_FORWARDED = {"host", "authorization", "content-length", "connection", "keep-alive",
                  "transfer-encoding", "accept-encoding"}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"
                                   if status < 500 else "api_error", "code": code}},
                        status_code=status)


def build_app(gateway: "gw.ModelGateway") -> Starlette:
    async def handle(request: Request) -> Response:
        if not gateway.authorized(request.headers.get("authorization")):
            return _error(401, "invalid_api_key", "the model gateway needs its process "
                          "token as the API key (OPENAI_API_KEY, as the wrapper sets it)")
        scope, ctx = gateway.scope_of(dict(request.headers))
        if scope is None:
            return _error(403, "no_active_run", "this call comes from no run of this "
                          "wrapper (it carries no federation.run baggage of a running "
                          "agent), so no model is billed for it")
        path = request.path_params["path"]
        if scope.own:
            return await _pass_through(gateway, request, path, ctx)
        if path != "chat/completions" or request.method != "POST":
            return _error(404, "not_supported", f"the platform's model serves POST "
                          f"/v1/chat/completions only, not {request.method} /v1/{path}")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return _error(400, "invalid_json", f"the request body is not JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "invalid_request", "the body needs a messages array")
        try:
            completion = await run_in_threadpool(gw.complete, scope, body, ctx)
        except WrapperError as error:
            return _error(error.status_code, error.code, error.message)
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(gw.stream_chunks(completion, include),
                                     media_type="text/event-stream")
        return JSONResponse(completion)

    return Starlette(routes=[Route("/v1/{path:path}", handle, methods=["GET", "POST"])])


async def _pass_through(gateway: "gw.ModelGateway", request: Request, path: str,
                        ctx: Any) -> Response:
    """An ``own`` agent's call, to the endpoint and key the process had configured."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
    if gateway.upstream_key:
        headers["authorization"] = f"Bearer {gateway.upstream_key}"
    url = f"{gateway.upstream_url}/{path}"
    if request.url.query:
        url += f"?{request.url.query}"
    token = otel_context.attach(ctx)  # the upstream call continues the caller's trace
    client = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=30.0))
    try:
        upstream = await client.send(client.build_request(
            request.method, url, headers=headers, content=await request.body()), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        return _error(502, "upstream_unreachable", f"the agent's own model endpoint "
                      f"{gateway.upstream_url} failed: {type(exc).__name__}: {exc}")
    finally:
        otel_context.detach(token)

    async def relay() -> Any:
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    kept = {k: v for k, v in upstream.headers.items()
            if k.lower() not in _NOT_FORWARDED | {"content-encoding"}}
    return StreamingResponse(relay(), status_code=upstream.status_code, headers=kept)
