"""Request bodies are capped while they stream in (web/limits.py): past its route's limit a request is
answered 413 in the JSON error envelope, without the body ever being held; a Daraja callback's token is
checked before its body is read."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from core.config import load_settings
from core.payments.models import CallbackInbox
from core.runtime import unit_of_work
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from web.limits import BodyLimits, LimitRequestBody, describe

KB = 1024
CHUNK = 16 * KB


@dataclass
class Exchange:
    """One request driven straight through an ASGI app: what it pulled of the body, what it answered."""

    pulled: int = 0  # body bytes the application (through the middleware) took from the server
    status: int | None = None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


async def drive(
    app: Callable[..., Awaitable[None]],
    path: str,
    *,
    body: bytes | None = None,
    endless: bool = False,
    content_length: int | None = None,
    query: bytes = b"",
    content_type: bytes = b"application/json",
) -> Exchange:
    """POST `body` in CHUNK pieces, or (`endless`) an endless body: a client that never stops sending.
    Without `content_length` no Content-Length header is sent, as with chunked transfer encoding."""
    ex = Exchange()
    data = body or b""
    headers = [(b"host", b"testserver"), (b"content-type", content_type)]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    responded = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if responded.is_set() or (not endless and ex.pulled >= len(data) and ex.pulled):
            await asyncio.sleep(3600)  # a server waits here until the client goes; the test never does
        if endless:
            ex.pulled += CHUNK
            return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}
        piece = data[ex.pulled : ex.pulled + CHUNK]
        ex.pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": ex.pulled < len(data)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert ex.status is None, "two responses started"
            ex.status = message["status"]
            ex.headers = dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            ex.body += message.get("body", b"")
            if not message.get("more_body"):
                responded.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=20)
    return ex


LIMITS = BodyLimits(daraja_callback=64 * KB, at_callback=8 * KB, telegram_webhook=KB * KB, default=KB * KB)


class Handler:
    """A stand-in application that reads the whole body, as a handler calling request.body() does."""

    def __init__(self) -> None:
        self.called = False
        self.finished = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.called = True
        while (await receive())["more_body"]:
            pass
        self.finished = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})


# -- the middleware alone ---------------------------------------------------------------------------------
def test_default_limits_and_routes() -> None:
    limits = BodyLimits.from_settings(load_settings(_env_file=None))
    assert limits == LIMITS
    assert limits.for_path("/callbacks/daraja/abc") == 64 * KB
    for path in ("/ussd", "/ussd/", "/ussd/events", "/callbacks/at/delivery"):
        assert limits.for_path(path) == 8 * KB, path
    assert limits.for_path("/telegram/webhook/s3cr3t") == KB * KB
    assert limits.for_path("/api/stk-push") == KB * KB
    assert (describe(64 * KB), describe(KB * KB), describe(1000)) == ("64 KB", "1 MB", "1000 bytes")


async def test_endless_body_without_content_length_is_cut_at_the_limit() -> None:
    handler = Handler()
    ex = await drive(LimitRequestBody(handler, limits=LIMITS), "/callbacks/daraja/tok", endless=True)
    assert ex.status == 413
    assert ex.json() == {
        "error": "payload_too_large",
        "detail": "The request body is too large: this URL accepts at most 64 KB (65536 bytes).",
    }
    assert ex.headers[b"connection"] == b"close"
    # The handler started reading but never got the whole body, and no more than one chunk past the
    # limit was ever taken from the server.
    assert handler.called and not handler.finished
    assert 64 * KB < ex.pulled <= 64 * KB + CHUNK


async def test_declared_length_over_the_limit_is_refused_before_the_application() -> None:
    handler = Handler()
    app = LimitRequestBody(handler, limits=LIMITS)
    ex = await drive(app, "/callbacks/at/delivery", endless=True, content_length=200 * KB * KB)
    assert ex.status == 413
    assert "8 KB" in ex.json()["detail"]
    assert (handler.called, ex.pulled) == (False, 0)
    # USSD is refused as a USSD screen: the gateway drops the session on anything but 200 CON/END.
    ex = await drive(app, "/ussd", endless=True, content_length=200 * KB * KB)
    assert (ex.status, ex.body) == (200, b"END This request is too long. Please dial again.")
    assert (handler.called, ex.pulled) == (False, 0)


async def test_bodies_within_the_limit_pass_untouched() -> None:
    handler = Handler()
    app = LimitRequestBody(handler, limits=LIMITS)
    ex = await drive(app, "/callbacks/daraja/tok", body=b"y" * (64 * KB), content_length=64 * KB)
    assert (ex.status, ex.body, handler.finished) == (200, b"read", True)
    ex = await drive(app, "/api/anything", body=b"y" * (KB * KB))  # streamed, exactly 1 MB
    assert (ex.status, ex.body) == (200, b"read")
    ex = await drive(app, "/api/anything", body=b"y" * (KB * KB + 1))
    assert ex.status == 413
    assert "1 MB" in ex.json()["detail"]


# -- the real application -----------------------------------------------------------------------------------
async def channel_token() -> str:
    tenant, _ = await make_tenant(name="Limits Shop")
    async with unit_of_work(readonly=True) as session:
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        return channel.callback_token


async def inbox_rows() -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).select_from(CallbackInbox)) or 0)


async def test_streamed_oversize_callback_is_413_and_never_reaches_the_inbox(server: LiveServer) -> None:
    token = await channel_token()
    before = await inbox_rows()
    ex = await drive(server.app, f"/callbacks/daraja/{token}", endless=True)
    assert ex.status == 413, ex.body
    assert ex.json()["error"] == "payload_too_large"
    assert 64 * KB < ex.pulled <= 64 * KB + CHUNK
    assert await inbox_rows() == before  # the handler never got a body to store


async def test_callback_content_length_over_the_limit_is_413_at_once(server: LiveServer) -> None:
    """Over a real socket: the headers alone (Content-Length 200 MB, no body sent) get the 413."""
    token = await channel_token()
    url = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(
            f"POST /callbacks/daraja/{token} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {200 * KB * KB}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head.startswith(b"HTTP/1.1 413 "), head
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split(b":")[1]
        )
        body = json.loads(await asyncio.wait_for(reader.readexactly(length), timeout=10))
        assert body["error"] == "payload_too_large"
        assert "64 KB" in body["detail"]
    finally:
        writer.close()


async def test_unknown_token_is_refused_without_reading_the_body(server: LiveServer) -> None:
    ex = await drive(server.app, f"/callbacks/daraja/{secrets.token_hex(24)}", endless=True)
    assert ex.status == 404
    assert ex.json()["error"] == "not_found"
    assert ex.pulled == 0
    # Over-long tokens keep Daraja's own envelope, also without a read.
    ex = await drive(server.app, f"/callbacks/daraja/{'a' * 65}", endless=True)
    assert (ex.status, ex.json(), ex.pulled) == (
        404,
        {"ResultCode": 1, "ResultDesc": "Unknown callback URL"},
        0,
    )


async def test_known_token_small_callback_is_still_accepted(server: LiveServer) -> None:
    token = await channel_token()
    before = await inbox_rows()
    payload = json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_limits", "ResultCode": 1032}}})
    ex = await drive(server.app, f"/callbacks/daraja/{token}", body=payload.encode())
    assert (ex.status, ex.json()) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
    assert await inbox_rows() == before + 1


@pytest.mark.parametrize("path", ["/ussd", "/callbacks/at/delivery"])
async def test_africas_talking_posts_are_capped_at_8_kb(server: LiveServer, path: str) -> None:
    form = b"sessionId=s1&phoneNumber=0712345678&text=" + b"1*" * (5 * KB)  # 10 KB
    ex = await drive(server.app, path, body=form, content_type=b"application/x-www-form-urlencoded")
    if path == "/ussd":
        assert (ex.status, ex.body) == (200, b"END This request is too long. Please dial again.")
    else:
        assert ex.status == 413
        assert "8 KB" in ex.json()["detail"]
    ex = await drive(server.app, path, body=form[: 7 * KB], content_type=b"application/x-www-form-urlencoded")
    assert ex.status != 413
