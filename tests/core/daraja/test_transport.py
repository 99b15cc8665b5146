"""The Daraja client's transport (core/daraja/transport.py: httpx in front, aiohttp underneath) against a
raw HTTP/1.1 server on a real socket that answers, hangs or hangs up on cue: what goes on the wire, what
comes back, and that each failure reaches the client as the httpx exception it sorts into "nothing was
sent" or "outcome unknown"."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import respx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.daraja import (
    DarajaClient,
    DarajaCredentials,
    DarajaTransientError,
    MemoryTokenStore,
    StkPushRequest,
)
from core.daraja.transport import DarajaTransport

PUSH = "/mpesa/stkpush/v1/processrequest"


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """Answers every request with JSON (``mode`` "ok", or "gzip" compressed), never answers ("hang"), or
    closes the connection after reading the request ("close")."""

    mode: str = "ok"
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    closed: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                first, *lines = head.split("\r\n")
                method, target, _ = first.split(" ")
                headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Seen(method, target, headers, body))
                if self.mode == "hang":
                    await self.release.wait()
                    return
                if self.mode == "close":
                    return
                payload = self.answer(len(self.requests))
                extra = b""
                if self.mode == "gzip":
                    payload, extra = gzip.compress(payload), b"Content-Encoding: gzip\r\n"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Count: %d\r\n%s"
                    b"Content-Length: %d\r\n\r\n%s" % (len(self.requests), extra, len(payload), payload)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()

    def answer(self, n: int) -> bytes:
        if self.requests[-1].target.startswith("/oauth"):
            return json.dumps({"access_token": "tok", "expires_in": "3599"}).encode()
        return json.dumps(
            {
                "MerchantRequestID": f"m-{n}",
                "CheckoutRequestID": f"ws_CO_{n}",
                "ResponseCode": "0",
                "ResponseDescription": "Success. Request accepted for processing",
                "CustomerMessage": "Success. Request accepted for processing",
            }
        ).encode()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    srv = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    yield state
    state.release.set()
    srv.close()
    await srv.wait_closed()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = DarajaTransport(max_connections=10, keepalive_seconds=0.3)
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(2.0, connect=1.0), headers={"User-Agent": "lipapush/test"}
    ) as client:
        yield client


def creds(base_url: str) -> DarajaCredentials:
    return DarajaCredentials.model_validate(
        {
            "base_url": base_url,
            "consumer_key": "ck",
            "consumer_secret": "cs",
            "passkey": "pk",
            "business_short_code": "174379",
            "party_b": "174379",
            "transaction_type": "CustomerPayBillOnline",
        }
    )


PUSH_REQUEST = StkPushRequest(
    phone="254708374149",
    amount=10,
    callback_url="https://lipapush.test/callbacks/daraja/x",
    account_reference="INV1",
    description="Order",
)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestWire:
    async def test_request_goes_out_as_httpx_built_it(self, server: Server, http: httpx.AsyncClient) -> None:
        response = await http.post(
            f"{server.url}/mpesa/stkpush/v1/processrequest?x=a%20b",
            json={"Amount": 10},
            headers={"Authorization": "Bearer tok"},
        )
        assert response.status_code == 200
        assert response.json()["CheckoutRequestID"] == "ws_CO_1"
        assert response.headers["x-request-count"] == "1"
        assert response.http_version == "HTTP/1.1"
        [seen] = server.requests
        assert (seen.method, seen.target, seen.body) == ("POST", f"{PUSH}?x=a%20b", b'{"Amount":10}')
        assert seen.headers["authorization"] == "Bearer tok"
        assert seen.headers["content-type"] == "application/json"
        assert seen.headers["user-agent"] == "lipapush/test"
        assert seen.headers["host"] == server.url.removeprefix("http://")
        assert seen.headers["content-length"] == "13"

    async def test_basic_auth_and_query_of_the_token_request(
        self, server: Server, http: httpx.AsyncClient
    ) -> None:
        response = await http.get(
            f"{server.url}/oauth/v1/generate?grant_type=client_credentials", auth=("key", "secret")
        )
        assert response.json() == {"access_token": "tok", "expires_in": "3599"}
        [seen] = server.requests
        assert seen.target == "/oauth/v1/generate?grant_type=client_credentials"
        assert seen.headers["authorization"] == "Basic a2V5OnNlY3JldA=="
        assert seen.body == b""

    async def test_a_compressed_answer_is_decoded_once(self, server: Server, http: httpx.AsyncClient) -> None:
        server.mode = "gzip"
        response = await http.post(f"{server.url}{PUSH}", json={})
        assert response.json()["ResponseCode"] == "0"

    async def test_connections_are_reused_then_dropped_when_idle(
        self, server: Server, http: httpx.AsyncClient
    ) -> None:
        for _ in range(3):
            await http.post(f"{server.url}{PUSH}", json={})
        assert server.connections == 1
        await asyncio.sleep(1.0)  # keepalive_seconds=0.3: the idle connection is closed by the client
        assert server.closed == 1
        await http.post(f"{server.url}{PUSH}", json={})
        assert server.connections == 2

    async def test_requests_in_flight_share_the_pool(self, server: Server, http: httpx.AsyncClient) -> None:
        answers = await asyncio.gather(*(http.post(f"{server.url}{PUSH}", json={}) for _ in range(25)))
        assert sorted(r.json()["CheckoutRequestID"] for r in answers) == sorted(
            f"ws_CO_{n}" for n in range(1, 26)
        )
        assert server.connections <= 10  # max_connections


class TestFailures:
    async def test_nothing_listening_is_a_connect_error(self, http: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{unused_port()}{PUSH}", json={})

    async def test_no_answer_is_a_read_timeout(self, server: Server) -> None:
        server.mode = "hang"
        async with httpx.AsyncClient(transport=DarajaTransport(), timeout=httpx.Timeout(0.3)) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(f"{server.url}{PUSH}", json={})
        assert len(server.requests) == 1

    async def test_hanging_up_after_the_request_is_a_protocol_error(
        self, server: Server, http: httpx.AsyncClient
    ) -> None:
        server.mode = "close"
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"{server.url}{PUSH}", json={})
        assert len(server.requests) == 1

    async def test_an_unsupported_scheme_is_refused_before_sending(self, http: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.post("ftp://127.0.0.1/x", json={})


class TestThroughTheClient:
    async def test_a_push_is_accepted(self, server: Server, http: httpx.AsyncClient) -> None:
        client = DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=())
        accepted = await client.stk_push(creds(server.url), PUSH_REQUEST)
        assert accepted.checkout_request_id == "ws_CO_2"
        assert [r.target.split("?")[0] for r in server.requests] == ["/oauth/v1/generate", PUSH]

    async def test_a_push_whose_answer_never_came_has_an_unknown_outcome(
        self, server: Server, http: httpx.AsyncClient
    ) -> None:
        client = DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=())
        await client.stk_query(creds(server.url), "ws_CO_x")  # fetches the token first
        server.mode = "close"
        with pytest.raises(DarajaTransientError) as info:
            await client.stk_push(creds(server.url), PUSH_REQUEST)
        assert info.value.outcome_unknown is True
        assert info.value.message.startswith("Daraja did not answer the STK push in time.")

    async def test_a_push_that_could_not_connect_was_not_sent(self, http: httpx.AsyncClient) -> None:
        client = DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=())
        with pytest.raises(DarajaTransientError) as info:
            await client.stk_push(creds(f"http://127.0.0.1:{unused_port()}"), PUSH_REQUEST)
        assert info.value.outcome_unknown is False

    async def test_respx_sees_requests_through_this_transport(
        self, server: Server, http: httpx.AsyncClient
    ) -> None:
        # Tests stand respx in front of the simulator (tests/core/payouts); on this transport too.
        with respx.mock(assert_all_called=False) as mock:
            mock.post(f"{server.url}{PUSH}").mock(side_effect=httpx.ReadTimeout("lost"))
            mock.route().pass_through()
            client = DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=())
            with pytest.raises(DarajaTransientError) as info:
                await client.stk_push(creds(server.url), PUSH_REQUEST)
        assert info.value.outcome_unknown is True
        assert [r.target.split("?")[0] for r in server.requests] == ["/oauth/v1/generate"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TestTls:
    @pytest.fixture
    async def tls_server(self, tmp_path: Path) -> AsyncIterator[tuple[Server, Path]]:
        cert, key = self_signed(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        state = Server()
        srv = await asyncio.start_server(state.handle, "127.0.0.1", 0, ssl=context)
        state.url = f"https://localhost:{srv.sockets[0].getsockname()[1]}"
        yield state, cert
        srv.close()
        await srv.wait_closed()

    async def test_a_trusted_certificate_is_accepted(self, tls_server: tuple[Server, Path]) -> None:
        server, cert = tls_server
        transport = DarajaTransport(ssl_context=ssl.create_default_context(cafile=cert))
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post(f"{server.url}{PUSH}", json={})
        assert response.json()["ResponseCode"] == "0"
        assert server.requests[0].headers["host"] == server.url.removeprefix("https://")

    async def test_an_untrusted_certificate_is_refused_before_sending(
        self, tls_server: tuple[Server, Path]
    ) -> None:
        # The default trust store is httpx's (certifi), which does not know this certificate.
        server, _ = tls_server
        async with httpx.AsyncClient(transport=DarajaTransport()) as client:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.post(f"{server.url}{PUSH}", json={})
        assert server.requests == []
