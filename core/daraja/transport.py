"""The Daraja client's HTTP transport: httpx in front, aiohttp underneath.

``httpx.AsyncClient`` stays the client's interface (timeouts, Basic auth for OAuth, the exception types
:mod:`core.daraja.client` sorts into "nothing was sent" and "outcome unknown"), but its default transport
is slow with many requests in flight: httpcore's pool walks every connection and polls every idle socket
on each request and release, tries to import the optional ``sniffio`` several times per request, and h11
parses responses in pure Python. Under this transport aiohttp's connector holds the sockets and its C
parser reads the answers: a push at fifty in flight took 2.5 ms of client CPU before, 0.64 ms after
(bench/daraja_client.py, bench/README.md).

Each request still goes through an httpcore connection object (one per origin, whose HTTP/1.1
machinery is replaced by the aiohttp session): tools that intercept httpcore's connections (respx, in
the tests that stand a misbehaving gateway in front of the simulator) see every request, as they would
on httpx's default transport. No httpcore pool is involved, so none of its per-request costs are paid.

What changes against httpx's own transport, and why it is safe here:

- Redirects, cookies, proxies from the environment and response decoding stay httpx's: aiohttp is told
  not to follow redirects, keep cookies or decompress, and httpx mounts its own proxy transports for
  ``HTTPS_PROXY`` and friends, so a proxied request never reaches this one.
- The same trust store: the TLS context is ``httpx.create_ssl_context()`` (certifi, ``SSL_CERT_FILE``).
- Timeouts: connect, read and pool as httpx's; a write timeout is not enforced (Daraja bodies are
  under a kilobyte, written in one send).
- Request bodies are read whole before sending and responses read whole before returning: Daraja
  sends and receives small JSON documents, never streams.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Callable
from functools import lru_cache

import aiohttp
import httpcore
import httpx
from yarl import URL

# Idle connections are dropped after 2 s, before a server's own idle timeout (5 s for uvicorn and many
# proxies). Reusing one the server is closing at that moment fails a POST after the request went out:
# for an STK push, an "outcome unknown" the merchant must wait on.
KEEPALIVE_SECONDS = 2.0


@lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    # aiohttp's `connect` covers waiting for a pooled connection *and* opening one; httpx splits them
    # into `pool` and `connect`, so the sum is the same bound on "no request was sent yet".
    acquire = None if pool is None or connect is None else pool + connect
    return aiohttp.ClientTimeout(total=None, connect=acquire, sock_connect=connect, sock_read=read)


@lru_cache(maxsize=256)
def _aiohttp_url(scheme: bytes, host: bytes, port: int | None, target: bytes) -> URL:
    # httpx has already percent-encoded the path and query: `encoded=True` keeps yarl from doing it twice.
    name = host.decode("ascii")
    if ":" in name:  # an IPv6 literal, which httpx hands over without its brackets
        name = f"[{name}]"
    authority = name if port is None else f"{name}:{port}"
    return URL(f"{scheme.decode('ascii')}://{authority}{target.decode('ascii')}", encoded=True)


def _translate(exc: Exception) -> httpx.TransportError:
    """aiohttp's failure as the httpx exception the Daraja client sorts on: a connect error or connect
    timeout means nothing was sent; anything later may have reached the server."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # opening, or waiting for, a connection
        return httpx.ConnectTimeout(text)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):  # waiting for the answer
        return httpx.ReadTimeout(text)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(text)
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return httpx.WriteError(text)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return httpx.ReadError(text)
    return httpx.RemoteProtocolError(text)  # ServerDisconnectedError, a malformed answer, ...


class _Exchange(httpcore.AsyncConnectionInterface):
    """Every request to one origin, over the shared aiohttp session. Always available: the aiohttp
    connector, not httpcore, decides which socket carries a request and how many are open."""

    def __init__(self, origin: httpcore.Origin, session: Callable[[], aiohttp.ClientSession]) -> None:
        self._origin = origin
        self._session = session

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        target = _aiohttp_url(url.scheme, url.host, url.port, url.target)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
        stream = request.stream
        body = (
            b"".join([part async for part in stream])
            if isinstance(stream, AsyncIterable)
            else b"".join(stream)
        )
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        timeout = _client_timeout(timeouts.get("connect"), timeouts.get("read"), timeouts.get("pool"))
        try:
            async with self._session().request(
                request.method.decode("ascii"),
                target,
                headers=headers,
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                content = await response.read()
                version = response.version or aiohttp.HttpVersion11
                return httpcore.Response(
                    status=response.status,
                    headers=list(response.raw_headers),
                    content=content,
                    extensions={
                        "http_version": f"HTTP/{version.major}.{version.minor}".encode(),
                        "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
                    },
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _translate(exc) from exc

    async def aclose(self) -> None:
        pass  # the transport closes the session, which all origins share

    def info(self) -> str:
        return "aiohttp"

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self._origin

    def is_available(self) -> bool:
        return True

    def has_expired(self) -> bool:
        return False

    def is_idle(self) -> bool:
        return False

    def is_closed(self) -> bool:
        return False


class _OriginConnection(httpcore.AsyncHTTPConnection):
    """httpcore's connection class, already "connected" to an :class:`_Exchange` instead of opening a
    socket and running h11 over it. It stays an httpcore connection so that whatever intercepts
    httpcore's connections (respx: its default mocker patches this class's ``handle_async_request``)
    sees every request, as on httpx's default transport."""

    def __init__(self, origin: httpcore.Origin, session: Callable[[], aiohttp.ClientSession]) -> None:
        super().__init__(origin)
        self._connection = _Exchange(origin, session)


class DarajaTransport(httpx.AsyncBaseTransport):
    """An httpx transport over aiohttp, for ``httpx.AsyncClient(transport=...)``. ``max_connections``
    bounds the open sockets across all origins, as ``httpx.Limits.max_connections`` does; an idle one
    is closed after ``keepalive_seconds``."""

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._tls = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._origins: dict[tuple[bytes, bytes, int | None], _OriginConnection] = {}

    def _aiohttp(self) -> aiohttp.ClientSession:
        # Made on first use, inside the event loop that will run it (aiohttp binds a session to one).
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive_seconds, ssl=self._tls
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                auto_decompress=False,  # httpx decodes, from the Content-Encoding passed back to it
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),  # httpx sends its own
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol {url.scheme!r}: use http:// or https://."
            )
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]  # an httpx stream is an async iterable
            extensions=request.extensions,
        )
        origin = req.url.origin
        key = (origin.scheme, origin.host, origin.port)
        connection = self._origins.get(key)
        if connection is None:
            connection = self._origins[key] = _OriginConnection(origin, self._aiohttp)
        response = await connection.handle_async_request(req)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            content=content,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        self._origins.clear()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
