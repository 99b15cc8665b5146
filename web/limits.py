"""Request body limits, enforced while the body streams in, before any handler could buffer it.

A pure ASGI middleware (no BaseHTTPMiddleware: that one would sit between the server and the body).
Each request gets its route's limit (settings `MAX_BODY_BYTES_*`): a Content-Length above it is refused
before the application runs; a body without one (chunked) is counted as the application reads it, and
the moment the count passes the limit the client gets 413 and the handler's read fails, so at most one
chunk past the limit is ever held. The answer is the project's JSON error envelope
`{"error": "payload_too_large", "detail": ...}` with `Connection: close` (the rest is never read);
for `POST /ussd` it is a 200 `END` line instead, the only answer Africa's Talking shows.

The reverse proxy we ship an example for (deploy/nginx/lipapush.conf) applies the same limits first.

Text no database can store (NUL, lone surrogates: core.text) is refused here too, by the field that
carries it, as 422 `invalid_input`: in the URL (path and query) by this middleware, for every route but
USSD, before routing; in form and JSON bodies by `refuse_unstorable_body`, a dependency of every route,
so that the panel renders it as its own error page. Three routes answer such text their own way
(`answers_bad_text_itself`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import Settings
from core.errors import InvalidInput
from core.text import first_unstorable, strings_in, unstorable

PAYLOAD_TOO_LARGE = 413
UNPROCESSABLE = 422


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


USSD_TOO_LONG = b"END This request is too long. Please dial again."


async def refuse_ussd(send: Send) -> None:
    """The gateway drops the session with a generic error on anything but a 200 with CON or END."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(USSD_TOO_LONG)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": USSD_TOO_LONG})


async def refuse(send: Send, limit: int, path: str = "") -> None:
    if path.rstrip("/") == "/ussd":
        await refuse_ussd(send)
        return
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


def is_ussd(path: str) -> bool:
    return path.rstrip("/") in ("/ussd", "/ussd/events")


def answers_bad_text_itself(path: str) -> bool:
    """Routes whose bodies are not refused for unstorable text: USSD must answer a CON/END line (the
    gateway drops the session on anything else), a Daraja callback is kept and recorded as rejected
    (core.payments.callbacks), and a Telegram update is stripped (web.telegram; polled ones in
    bots.app): refusing an update would only make Telegram send it again, for ever."""
    return is_ussd(path) or path.startswith(("/callbacks/daraja/", "/telegram/webhook/"))


def url_problem(scope: Scope) -> tuple[str, str] | None:
    """(field, sentence) for unstorable text in the request's path or query string, else None.
    The path arrives decoded (`%00` is already NUL); the query is decoded as Starlette will."""
    problem = unstorable(scope.get("path", ""), "The URL path")
    if problem is not None:
        return "path", problem
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:  # the only way a query decodes to NUL
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            problem = unstorable(name, "A query parameter's name")
            if problem is not None:
                return "query", problem
            problem = unstorable(value, f"Query parameter '{name}'")
            if problem is not None:
                return name, problem
    return None


async def refuse_text(send: Send, field: str, problem: str) -> None:
    """The same envelope the application gives an `InvalidInput`."""
    body = json.dumps({"error": "invalid_input", "detail": problem, "errors": {field: problem}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": UNPROCESSABLE,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def refuse_unstorable_body(request: Request) -> None:
    """A dependency of every route: a form or JSON body field holding unstorable text is refused as
    `InvalidInput` on that field, before the route or any of its own dependencies reads it. Bodies are
    already capped (above), and the parsed form or JSON is cached on the request, so the route's own
    parsing does not read it twice."""
    if answers_bad_text_itself(request.url.path):
        return
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    found: Iterable[tuple[tuple[str, ...], str]]
    if ctype in FORM_TYPES:
        form = await request.form()
        found = [
            ((name,), text)
            for name, value in form.multi_items()
            for text in (name, value)
            if isinstance(text, str)
        ]
    elif ctype in ("", "application/json") or ctype.endswith("+json"):
        # FastAPI reads a body without a content type as JSON too.
        if not await request.body():
            return  # most GETs: nothing to parse
        try:
            data = await request.json()
        except ValueError:
            return  # not JSON: the route's own parsing says what is wrong with it
        found = strings_in(data)
    else:
        return
    if (bad := first_unstorable(found)) is not None:
        raise InvalidInput(*bad)


class LimitRequestBody:
    def __init__(self, app: ASGIApp, *, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not is_ussd(scope["path"]) and (problem := url_problem(scope)) is not None:
            await refuse_text(send, *problem)
            return
        limit = self.limits.for_path(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await refuse(send, limit, scope["path"])
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
                        await refuse(send, limit, scope["path"])
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
