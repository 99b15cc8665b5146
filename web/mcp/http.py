"""/mcp over Streamable HTTP: the API key is checked on every request (each MCP message is its own
POST), before the SDK sees it, so a revoked key is refused on its very next call; a browser page of
another site is refused by its Origin (the spec's DNS-rebinding rule).

Stateless: no MCP session is kept between requests, so any web process behind a load balancer answers
any request, and nothing is lost when one restarts."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from core.auth.service import auth
from core.auth.tokens import hash_api_key, looks_like_api_key
from core.context import current_request
from core.db import utcnow
from core.errors import AuthenticationFailed, LipapushError, PermissionDenied
from core.runtime import Runtime, unit_of_work
from core.usage.networks import network_of
from core.usage.recorder import Caller as UsageCaller
from core.usage.recorder import RequestFacts, UsageRecorder
from web.deps import API_KEY_LOOKUP
from web.mcp.context import Caller, caller_var
from web.mcp.server import build_server

PATH = "/mcp"
KEY_PREFIX_LENGTH = 12
HOW = (
    "Send 'Authorization: Bearer <API key>' (lp_test_… or lp_live_…) with every request to /mcp: "
    "create a key in the panel (Settings → API keys) or with `lipapush apikey create`."
)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class McpEndpoint:
    def __init__(self, app: ASGIApp, *, recorder: UsageRecorder | None, public_url: str) -> None:
        self.app = app
        self.recorder = recorder
        self.origins = {_origin(public_url)}

    async def _answer(self, send: Send, status: int, exc: LipapushError) -> None:
        body = json.dumps({"error": exc.code, "detail": exc.message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="lipapush", error="invalid_token"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _refused(self, token: str, started: float, ip: str | None) -> None:
        """A refused key counts in its business's usage (and its refused-keys alert) like on /api."""
        if self.recorder is None or not looks_like_api_key(token):
            return
        req = current_request()
        self.recorder.record(
            RequestFacts(
                caller=UsageCaller(key_hash=hash_api_key(token), key_prefix=token[:KEY_PREFIX_LENGTH]),
                method="POST",
                route=PATH,
                status_code=401,
                latency_ms=int((time.perf_counter() - started) * 1000),
                request_id=req.request_id if req else None,
                network=network_of(ip),
                at=utcnow(),
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        origin = headers.get("origin")
        if origin and origin.lower() not in self.origins:
            await self._answer(
                send, 403, PermissionDenied(f"Requests from pages of {origin} may not use this MCP server.")
            )
            return
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        client = scope.get("client")
        ip = client[0] if client else None
        if scheme.lower() != "bearer" or not looks_like_api_key(token):
            await self._answer(send, 401, AuthenticationFailed(HOW))
            return
        try:
            async with unit_of_work(scope=API_KEY_LOOKUP) as session:
                principal = await auth.principal_from_api_key(session, token)
        except AuthenticationFailed as exc:
            self._refused(token, started, ip)
            await self._answer(send, 401, exc)
            return
        req = current_request()
        caller = Caller(
            key=token,
            transport="http",
            principal=principal,
            ip=ip,
            request_id=req.request_id if req else None,
        )
        reset = caller_var.set(caller)
        try:
            await self.app(scope, receive, send)
        finally:
            caller_var.reset(reset)


def install_mcp(app: FastAPI, rt: Runtime) -> None:
    """Mount /mcp (served by `lipapush web` and `serve`) and run the SDK's session manager in the
    app's lifespan."""
    recorder: UsageRecorder | None = getattr(app.state, "usage_recorder", None)
    server = build_server(recorder=recorder)
    mcp_app = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        # The Host header is the load balancer's business here; Origin is checked above.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    # Starlette serves a non-function endpoint as an ASGI app; its annotation names functions only.
    app.add_route(
        PATH,
        McpEndpoint(mcp_app, recorder=recorder, public_url=rt.settings.base_url),  # type: ignore[arg-type]
        methods=["GET", "POST", "DELETE"],
        include_in_schema=False,
    )
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with server.session_manager.run(), inner(a) as state:
            yield state

    app.router.lifespan_context = lifespan
