"""Request body limits, enforced while the body streams in, before any handler could buffer it.

A pure ASGI middleware (no BaseHTTPMiddleware: that one would sit between the server and the body).
Each request gets its route's limit (settings `MAX_BODY_BYTES_*`): a Content-Length above it is refused
before the application runs; a body without one (chunked) is counted as the application reads it, and
the moment the count passes the limit the client gets 413 and the handler's read fails, so at most one
chunk past the limit is ever held. The answer is the project's JSON error envelope
`{"error": "payload_too_large", "detail": ...}` with `Connection: close` (the rest is never read).

The reverse proxy we ship an example for (deploy/nginx/lipapush.conf) applies the same limits first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import Settings

PAYLOAD_TOO_LARGE = 413


@dataclass(frozen=True)
class BodyLimits:
    """Bytes allowed per route; `for_path` picks the one for a request path."""

    daraja_callback: int
    at_callback: int
    telegram_webhook: int
    default: int

    @classmethod
    def from_settings(cls, s: Settings) -> BodyLimits:
        return cls(
            daraja_callback=s.MAX_BODY_BYTES_DARAJA_CALLBACK,
            at_callback=s.MAX_BODY_BYTES_AT_CALLBACK,
            telegram_webhook=s.MAX_BODY_BYTES_TELEGRAM_WEBHOOK,
            default=s.MAX_BODY_BYTES_DEFAULT,
        )

    def for_path(self, path: str) -> int:
        if path.startswith("/callbacks/daraja/"):
            return self.daraja_callback
        if path.rstrip("/") in ("/ussd", "/ussd/events", "/callbacks/at/delivery"):
            return self.at_callback
        if path.startswith("/telegram/webhook/"):
            return self.telegram_webhook
        return self.default


def describe(limit: int) -> str:
    """`65536` → "64 KB", `1048576` → "1 MB", else the bytes."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


class BodyTooLarge(HTTPException):
    """Raised from `receive` inside the application once the body passes its limit. An HTTPException,
    so the application's exception middleware turns it into a response (swallowed: ours has gone out)
    instead of it being logged as an unhandled error."""

    def __init__(self, limit: int) -> None:
        super().__init__(PAYLOAD_TOO_LARGE, detail=f"request body over {limit} bytes")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": "payload_too_large",
            "detail": f"The request body is too large: this URL accepts at most {describe(limit)} "
            f"({limit} bytes).",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": PAYLOAD_TOO_LARGE,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class LimitRequestBody:
    def __init__(self, app: ASGIApp, *, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await refuse(send, limit)
            return

        received = 0
        started = False  # the application has begun its own response
        refused = False  # our 413 has gone out: whatever the application sends after is dropped

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started and not refused:
                        await refuse(send, limit)
                        refused = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not refused:
                raise
