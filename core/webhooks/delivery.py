"""One webhook POST, guarded against SSRF, with everything the delivery log records about it.

Built on httpcore (httpx's own transport layer) directly rather than an httpx client, because every
safety property is then a property of the code below, not a default to remember to switch off: there
is no redirect following, no cookie jar and no proxy taken from the environment.

**Connecting to the checked address.** httpcore opens connections through a network backend with the
URL's host name; `_GuardedBackend.connect_tcp` resolves that name once (`ssrf.resolve_checked`, every
address public) and connects to one of exactly those IP literals, so no second lookup can hand back a
different (private) address. Everything else still works on the *name*, untouched: the Host header,
the pool's connection key, and for https the TLS server name (SNI) and the certificate check, which
httpcore performs with `server_hostname=<the URL's host>` over the already-connected socket. A
pooled connection is reused only for the same scheme, host and port, and was checked when opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType

import httpcore
import httpx

from core.webhooks.ssrf import BlockedTarget, UnresolvableTarget, check_url_shape, resolve_checked

# Responses up to this size are read whole, so the connection can be reused; a larger one is cut here
# and the connection closed: an endless or huge answer costs us nothing.
RESPONSE_READ_LIMIT = 4 * 1024
# What the delivery log keeps of the response body.
EXCERPT_BYTES = 1024
USER_AGENT = "lipapush-webhooks/1"
# A Retry-After longer than this is read as this: one receiver cannot park its events for a week.
MAX_RETRY_AFTER_SECONDS = 24 * 3600


_SEND_FAILURES = (
    BlockedTarget,
    UnresolvableTarget,
    TimeoutError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
)


class DeliveryOutcome(StrEnum):
    delivered = "delivered"  # 2xx
    failed = "failed"  # anything else: retry on the schedule
    gone = "gone"  # 410: the receiver asks us to stop; the endpoint is disabled


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: DeliveryOutcome
    status_code: int | None  # None: no HTTP answer (refused, unreachable, timed out)
    latency_ms: int  # from the start of the attempt to the response headers (or the failure)
    response_excerpt: str  # the first EXCERPT_BYTES of the body, decoded, never NUL
    error: str | None  # why it was not delivered, for the developer reading the log
    retry_after: int | None = None  # seconds, from a 429/5xx Retry-After

    @property
    def gone(self) -> bool:
        return self.outcome is DeliveryOutcome.gone


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> int | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = int((when - (now or datetime.now(UTC))).total_seconds())
    return max(0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def _excerpt(raw: bytes) -> str:
    # Cut mid-character the last one decodes as U+FFFD; NUL cannot be stored in a Postgres text column.
    return raw[:EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default (system verification rules, certifi's roots), built once: loading the roots
    costs tens of milliseconds a delivery. Sharing is safe: httpcore only sets the same ALPN on it."""
    return httpx.create_ssl_context()


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host at connect time, then connects to a checked IP literal."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_checked(host, port, allow_private=self._allow_private)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from None
        last: Exception | None = None
        for ip in addresses:
            left = None if timeout is None else max(0.001, timeout - (time.monotonic() - started))
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=left, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedTarget("webhooks are never sent over a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class WebhookSender:
    """A connection pool for deliveries; one per worker process, closed on shutdown (`aclose` or
    `async with`). Safe to share between concurrent deliveries."""

    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float = 5.0,
        timeout: float = 15.0,
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or _default_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            retries=0,
            network_backend=_GuardedBackend(allow_private=allow_private),
        )

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        """POST `body` to `url` once. Never raises for anything the receiver or network does."""
        started = time.perf_counter()

        def failed(error: str, status: int | None = None, excerpt: str = "") -> DeliveryResult:
            latency = round((time.perf_counter() - started) * 1000)
            return DeliveryResult(DeliveryOutcome.failed, status, latency, excerpt, error)

        try:
            check_url_shape(url, allow_private=self.allow_private)
        except ValueError as exc:  # InvalidInput
            return failed(f"refused: {exc}")
        request_headers = [
            (b"Content-Type", b"application/json"),
            (b"User-Agent", USER_AGENT.encode()),
            (b"Content-Length", str(len(body)).encode()),
        ] + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        limits = {"connect": self.connect_timeout, "read": self.timeout, "write": self.timeout}
        limits["pool"] = self.timeout
        response: httpcore.Response | None = None
        raw = bytearray()
        latency = 0
        try:
            async with asyncio.timeout(self.timeout):
                async with self._pool.stream(
                    "POST", url, headers=request_headers, content=body, extensions={"timeout": limits}
                ) as response:
                    latency = round((time.perf_counter() - started) * 1000)
                    # An async generator, typed as a plain iterator; closed here, not whenever GC runs.
                    async with contextlib.aclosing(response.aiter_stream()) as chunks:  # type: ignore[type-var]
                        async for chunk in chunks:
                            raw += chunk
                            if len(raw) >= RESPONSE_READ_LIMIT:
                                break  # leaving the block closes the connection mid-body
        except _SEND_FAILURES as exc:
            if response is None:
                return failed(self._describe(exc))
            # It answered, then stalled or dropped the connection inside the body: its status stands.

        assert response is not None
        status = response.status
        answer = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
        excerpt = _excerpt(bytes(raw))
        if 200 <= status < 300:
            return DeliveryResult(DeliveryOutcome.delivered, status, latency, excerpt, None)
        if status == 410:
            return DeliveryResult(
                DeliveryOutcome.gone, status, latency, excerpt, "HTTP 410 Gone: the receiver asked to stop"
            )
        if 300 <= status < 400:
            location = answer.get("location", "")[:300] or "(no Location)"
            error = f"HTTP {status} to {location}: redirects are not followed, register the final URL"
            return DeliveryResult(DeliveryOutcome.failed, status, latency, excerpt, error)
        retry_after = parse_retry_after(answer.get("retry-after")) if status == 429 or status >= 500 else None
        return DeliveryResult(DeliveryOutcome.failed, status, latency, excerpt, f"HTTP {status}", retry_after)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, BlockedTarget):
            return f"refused: {exc}"
        if isinstance(exc, UnresolvableTarget):
            return str(exc)
        if isinstance(exc, httpcore.ConnectTimeout):
            return f"could not connect within {self.connect_timeout:g} s"
        if isinstance(exc, TimeoutError | httpcore.TimeoutException):
            return f"no answer within {self.timeout:g} s"
        if isinstance(exc, httpcore.ConnectError):
            return f"could not connect: {exc or type(exc).__name__}"
        return f"the connection failed: {exc or type(exc).__name__}"


async def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_private: bool,
    timeout: float = 15.0,  # noqa: ASYNC109 (the whole attempt's budget, enforced by WebhookSender)
    connect_timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryResult:
    """One delivery on a connection of its own. A worker sending many keeps one WebhookSender."""
    async with WebhookSender(
        allow_private=allow_private, timeout=timeout, connect_timeout=connect_timeout, ssl_context=ssl_context
    ) as sender:
        return await sender.send(url, body, headers)
