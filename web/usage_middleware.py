"""The API request log's hook on every /api request (core/usage/recorder.py keeps and writes it).

A pure ASGI middleware, outermost of ours, so the latency it measures includes every other layer and
it sees every answer, the 401 of a refused key and the 413 of a body over its limit included. It only
notes who asked (a key's hash and prefix, or a login token's business from its verified signature;
no database read), the route template the router matched (never the path with its ids), the status,
the time taken, the request id the response carries and the client's network, and hands that to the
recorder, which never waits. Requests without credentials of ours are not logged: they are nobody's.

The row is handed over just before the response's last bytes go out, so a client that has read the
whole answer can count on the row being in the recorder's buffer (the next flush writes it).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.auth.tokens import hash_api_key, looks_like_api_key, read_access_token
from core.db import utcnow
from core.errors import AuthenticationFailed
from core.runtime import Runtime
from core.usage.networks import network_of
from core.usage.recorder import UNMATCHED_ROUTE, Caller, RequestFacts, UsageRecorder

try:  # FastAPI 0.137 and later: included routes keep their own, unprefixed, path (see RouteTemplates)
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI copies each route with its full path
    iter_route_contexts = None  # type: ignore[assignment]

API_PREFIX = "/api/"
NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")
KEY_PREFIX_LENGTH = 12  # core.auth.tokens.new_api_key: the prefix the keys table keeps


def caller_of(scope: Scope, *, secret: str) -> Caller | None:
    """Whose credentials the request carries, or None (none, or not ours)."""
    header = b""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            header = value
            break
    scheme, _, token = header.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    if looks_like_api_key(token):
        return Caller(key_hash=hash_api_key(token), key_prefix=token[:KEY_PREFIX_LENGTH])
    if token.count(".") != 2:
        return None
    try:
        claims = read_access_token(token, secret=secret)
    except AuthenticationFailed:
        return None  # expired or forged: it names no business we can trust
    return Caller(tenant_id=claims.tenant_id) if claims.tenant_id else None


class RouteTemplates:
    """The full template of the route a request matched ("/api/transactions/{payment_id}").

    Since FastAPI 0.137, `include_router` no longer copies routes with their prefixes: `scope["route"]`
    is the route as its module declared it ("/transactions/{payment_id}", fastapi#16051). The prefixed
    template is in the app's route contexts (`iter_route_contexts`), read once, on the first request,
    when every router has been included."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self._routes = routes
        self._by_route: dict[int, list[Any]] | None = None

    def _contexts(self) -> dict[int, list[Any]]:
        if self._by_route is None:
            self._by_route = {}
            if iter_route_contexts is not None:
                for ctx in iter_route_contexts(self._routes):
                    self._by_route.setdefault(id(ctx.original_route), []).append(ctx)
        return self._by_route

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        contexts = self._contexts().get(id(route), [])
        # A route included under two prefixes has two templates: the one the path fits.
        for ctx in contexts if len(contexts) > 1 else ():
            if ctx.path_regex.match(scope["path"]):
                return str(ctx.path_format)
        found = contexts[0] if contexts else route
        return str(getattr(found, "path_format", None) or getattr(found, "path", None) or UNMATCHED_ROUTE)


class UsageMiddleware:
    def __init__(
        self, app: ASGIApp, *, recorder: UsageRecorder, secret: str, routes: list[BaseRoute]
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.secret = secret
        self.templates = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        caller = caller_of(scope, secret=self.secret)
        if caller is None:
            await self.app(scope, receive, send)
            return
        at = utcnow()
        started = time.perf_counter()
        status: int | None = None
        request_id: str | None = None
        recorded = False

        def record(code: int) -> None:
            nonlocal recorded
            recorded = True
            route = self.templates.of(scope)
            client = scope.get("client")
            self.recorder.record(
                RequestFacts(
                    caller=caller,
                    method=scope["method"],
                    route=route,
                    status_code=code,
                    latency_ms=round((time.perf_counter() - started) * 1000),
                    request_id=request_id,
                    network=network_of(client[0] if client else None),
                    at=at,
                )
            )

        async def noting_send(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        # A client may choose its request id: only what a log column can always hold.
                        request_id = NOT_PRINTABLE.sub("", value.decode("latin-1"))[:64] or None
            elif (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and not recorded
                and status is not None
            ):
                record(status)
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        except Exception:
            if not recorded:
                record(status or 500)  # the server answers 500 for what escaped
            raise
        if not recorded and status is not None:
            record(status)


def install_usage_log(app: FastAPI, rt: Runtime) -> UsageRecorder:
    """Log every /api request of a known caller (core.usage): the middleware, outermost of ours, and the
    recorder's last flush at shutdown, before the app's own shutdown closes the database. The recorder
    is `app.state.usage_recorder` (tests flush it rather than wait for its timer)."""
    recorder = UsageRecorder(flush_every=rt.settings.USAGE_FLUSH_SECONDS)
    app.state.usage_recorder = recorder
    app.add_middleware(
        UsageMiddleware, recorder=recorder, secret=rt.settings.SECRET_KEY, routes=app.router.routes
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            try:
                yield state
            finally:
                await recorder.close()

    app.router.lifespan_context = lifespan
    return recorder
