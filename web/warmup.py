"""Do before serving what the first request would otherwise do.

FastAPI (0.16x) builds each route's request model, its dependencies' TypeAdapters and the included
routers' match tables lazily, on the first request that walks past them, then caches them. For
lipapush's ~150 routes that was 1.3 s of CPU on the first request after every start: a web process
restarted after a crash answered its first callback seconds late. Walking every router once, with a
request for a path nothing serves, builds all of it; done in the supervisor before it forks
(web/supervisor.py), every child starts with the tables built and shared.
"""

from __future__ import annotations

import asyncio
from typing import Any

WARM_PATH = "/__lipapush_warm_up__"


async def _walk(app: Any) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": WARM_PATH,
        "raw_path": WARM_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"warm-up"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
    }
    await app(scope, receive, send)
    return status


def warm_up(app: Any) -> int:
    """Walk every route once, outside the app's lifespan, on a loop of its own that is closed again
    (nothing bound to it survives: engines and clients are made per loop, on first use). Returns the
    status of the walk: 404, since no route serves the path."""
    return asyncio.run(_walk(app))
