"""A merchant's webhook receiver, served for real on loopback: it records every request and answers
what the test scripts (a status per request, then 200)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import serving


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    # Statuses to answer, in order (then 200), per path.
    script: dict[str, list[int]] = field(default_factory=dict)

    def at(self, path: str) -> str:
        return f"{self.url}{path}"

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        self.requests.append(
            Received(path, {k.lower(): v for k, v in request.headers.items()}, body, time.time())
        )
        queue = self.script.get(path) or []
        status = queue.pop(0) if queue else 200
        return Response(f"answer {status}", status_code=status)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/{path:path}", rec._handle, methods=["POST"])])
    async with serving(app, lifespan="off") as url:
        rec.url = url
        yield rec
