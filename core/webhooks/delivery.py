"""One webhook POST, guarded against SSRF, with everything the delivery log records about it.

Built on an aiohttp `ClientSession` configured so that every safety property is a setting written
below, not a default: redirects are not followed (`allow_redirects=False`), cookies are neither kept
nor sent (`DummyCookieJar`), no proxy or netrc is taken from the environment (`trust_env=False`),
bodies are not decompressed (`auto_decompress=False`, no `Accept-Encoding` offered) and at most
RESPONSE_READ_LIMIT bytes of an answer are read. (It was built on httpcore until its pool's
per-request bookkeeping made deliveries 55-80x slower than a bare aiohttp client: bench/README.md.)

**Connecting to the checked address.** aiohttp asks the connector's resolver for the addresses of
the URL's host name whenever it opens a connection. `_CheckedResolver` answers with
`ssrf.resolve_checked` (every address public, else BlockedTarget) and returns exactly those IP
literals, so aiohttp connects only to what was checked and no second lookup can hand back a different
(private) address. aiohttp's own DNS cache is off (`use_dns_cache=False`): every *new* connection is
resolved and checked again, so a name that turns private later (DNS rebinding) is refused at its next
connection. A pooled keep-alive connection is reused only for the same scheme, host name and port, and
its address was checked when it was opened. aiohttp skips the resolver for a URL whose host is an IP
literal, so `send` checks a literal itself before the request (no lookup involved). Everything else
works on the *name*: the Host header, the pool's key, and for https the TLS server name (SNI) and the
certificate check.

One sender per event loop (core.runtime keeps one per loop): the session is created by the first
`send`, inside the running loop, and closed by `aclose`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from core.webhooks.ssrf import BlockedTarget, UnresolvableTarget, check_url_shape, resolve_checked

# Responses up to this size are read whole, so the connection can be reused; a larger one is cut here
# and the connection closed: an endless or huge answer costs us nothing.
RESPONSE_READ_LIMIT = 4 * 1024
# What the delivery log keeps of the response body.
EXCERPT_BYTES = 1024
USER_AGENT = "lipapush-webhooks/1"
# A Retry-After longer than this is read as this: one receiver cannot park its events for a week.
MAX_RETRY_AFTER_SECONDS = 24 * 3600
# At most this many connections to one receiver (scheme, host name, port) at a time, of the sender's
# `max_connections` (100 by default): one slow or stalling merchant ties up at most a fifth of the pool
# and its deliveries queue for these, while every other merchant's still find a free connection. 20 in
# flight to one receiver is more than a healthy one needs (an answer takes tens of milliseconds).
MAX_CONNECTIONS_PER_HOST = 20
# An idle keep-alive connection is reused only within this many seconds of its last answer, then
# closed. Servers close idle connections on their own clock (uvicorn, Node.js and Apache after 5 s,
# gunicorn's async workers after 2 s, nginx after 75 s); reusing one just as the server closes it makes
# the POST fail with "server disconnected": a spurious failed attempt in the merchant's log (POST is
# not retried on another connection). Staying under the common 5 s keeps that race away; a busy
# receiver still reuses its connections.
KEEPALIVE_SECONDS = 2.0


class _ConnectTimeout(Exception):
    """Resolving the host took longer than the connect timeout (raised through aiohttp untouched)."""


_SEND_FAILURES = (
    BlockedTarget,
    UnresolvableTarget,
    _ConnectTimeout,
    TimeoutError,  # asyncio.timeout, and aiohttp's ServerTimeoutError family
    aiohttp.ClientError,
    OSError,
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
    costs tens of milliseconds a delivery. Sharing is safe: aiohttp never changes a context it is given."""
    return httpx.create_ssl_context()


@functools.lru_cache(maxsize=1024)
def _target(url: str, allow_private: bool) -> URL | str:
    """The URL to request, or why it is refused before any lookup (`check_url_shape`). Pure for its
    two arguments, so remembered: a worker sends to the same endpoints again and again."""
    try:
        check_url_shape(url, allow_private=allow_private)
        # An ASCII URL goes out exactly as registered (no re-quoting of its path and query).
        return URL(url, encoded=url.isascii())
    except ValueError as exc:  # InvalidInput, or a URL yarl cannot parse
        return f"refused: {exc}"


def _is_ip_literal(host: str) -> bool:
    if ":" not in host and not host[-1:].isdigit():
        return False  # a name (IPv4 literals end in a digit, IPv6 ones have colons): no parse attempt
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver for a new connection: the checked addresses of the host, nothing else."""

    def __init__(self, *, allow_private: bool, timeout: float) -> None:
        self._allow_private = allow_private
        self._timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await resolve_checked(host, port, allow_private=self._allow_private)
        except TimeoutError:
            raise _ConnectTimeout(f"resolving {host} took longer than {self._timeout:g} s") from None
        except UnicodeError:  # the IDNA codec refusing a label (empty, over 63 characters)
            raise UnresolvableTarget(f"{host} is not a valid host name") from None
        results: list[ResolveResult] = []
        for ip in addresses:
            ip_family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, ip_family):
                results.append(
                    {
                        "hostname": host,
                        "host": str(ip),
                        "port": port,
                        "family": ip_family,
                        "proto": socket.IPPROTO_TCP,
                        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    }
                )
        if not results:
            raise UnresolvableTarget(f"{host} has no address of the family asked for")
        return results

    async def close(self) -> None:
        pass


class WebhookSender:
    """A connection pool for deliveries; one per worker process and event loop, closed on shutdown
    (`aclose` or `async with`). Safe to share between concurrent deliveries on its loop."""

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
        self.max_connections = max_connections
        self._ssl_context = ssl_context
        # Created by the first send, inside the running loop (this may run outside one).
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session, self._loop = self._session, None, None
        if session is not None:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None:
            if loop is not self._loop:
                raise RuntimeError("a WebhookSender is used on one event loop only; make one per loop")
            return self._session
        connector = aiohttp.TCPConnector(
            resolver=_CheckedResolver(allow_private=self.allow_private, timeout=self.connect_timeout),
            # No cache of lookups: each new connection is resolved and checked (module docstring).
            use_dns_cache=False,
            ssl=self._ssl_context or _default_ssl_context(),
            limit=self.max_connections,
            limit_per_host=MAX_CONNECTIONS_PER_HOST,
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.connect_timeout),
            auto_decompress=False,
            # The body buffer pauses the socket past twice this: a huge answer is not read ahead of us.
            read_bufsize=RESPONSE_READ_LIMIT,
            skip_auto_headers=("Accept", "Accept-Encoding"),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        self._loop = loop
        return self._session

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        """POST `body` to `url` once. Never raises for anything the receiver or network does."""
        started = time.perf_counter()

        def failed(error: str, status: int | None = None, excerpt: str = "") -> DeliveryResult:
            latency = round((time.perf_counter() - started) * 1000)
            return DeliveryResult(DeliveryOutcome.failed, status, latency, excerpt, error)

        target = _target(url, self.allow_private)
        if isinstance(target, str):
            return failed(target)
        session = self._client()
        response: aiohttp.ClientResponse | None = None
        raw = bytearray()
        latency = 0
        try:
            async with asyncio.timeout(self.timeout):
                host = target.raw_host or ""
                if _is_ip_literal(host):  # aiohttp does not ask the resolver about a literal
                    await resolve_checked(host, target.port or 0, allow_private=self.allow_private)
                async with session.post(
                    target, data=body, headers=headers, allow_redirects=False, proxy=None
                ) as response:
                    latency = round((time.perf_counter() - started) * 1000)
                    while len(raw) < RESPONSE_READ_LIMIT:
                        chunk = await response.content.read(RESPONSE_READ_LIMIT - len(raw))
                        if not chunk:
                            break
                        raw += chunk
                    if not response.content.is_eof():
                        response.close()  # cut mid-body: the connection is closed, not pooled
        except _SEND_FAILURES as exc:
            if response is None:
                return failed(self._describe(exc))
            # It answered, then stalled or dropped the connection inside the body: its status stands.

        assert response is not None
        status = response.status
        excerpt = _excerpt(bytes(raw))
        if 200 <= status < 300:
            return DeliveryResult(DeliveryOutcome.delivered, status, latency, excerpt, None)
        if status == 410:
            return DeliveryResult(
                DeliveryOutcome.gone, status, latency, excerpt, "HTTP 410 Gone: the receiver asked to stop"
            )
        if 300 <= status < 400:
            location = response.headers.get("location", "")[:300] or "(no Location)"
            error = f"HTTP {status} to {location}: redirects are not followed, register the final URL"
            return DeliveryResult(DeliveryOutcome.failed, status, latency, excerpt, error)
        retry_after = (
            parse_retry_after(response.headers.get("retry-after")) if status == 429 or status >= 500 else None
        )
        return DeliveryResult(DeliveryOutcome.failed, status, latency, excerpt, f"HTTP {status}", retry_after)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, BlockedTarget):
            return f"refused: {exc}"
        if isinstance(exc, UnresolvableTarget):
            return str(exc)
        if isinstance(exc, aiohttp.InvalidURL):  # e.g. 127.1: aiohttp takes no legacy IPv4 forms
            return f"refused: {exc}"
        if isinstance(exc, _ConnectTimeout | aiohttp.ConnectionTimeoutError):
            return f"could not connect within {self.connect_timeout:g} s"
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.timeout:g} s"
        if isinstance(exc, aiohttp.ClientConnectorError):
            # The OS's or TLS's own words ("Connect call failed…", "[SSL: CERTIFICATE_VERIFY_FAILED]…"),
            # not aiohttp's wrapper, which prints the SSL context object.
            return f"could not connect: {exc.os_error or type(exc.os_error).__name__}"
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
