"""One delivery against a real receiver (uvicorn on loopback, so allow_private=True), and the SSRF
guard refusing that same receiver when private targets are not allowed."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook, WebhookVerificationError

from core.webhooks.delivery import EXCERPT_BYTES, RESPONSE_READ_LIMIT, DeliveryOutcome, WebhookSender, deliver
from core.webhooks.signing import event_body, new_message_id, new_secret, sign
from core.webhooks.ssrf import validate_endpoint_url
from tests.support.servers import bound_socket, serving

HUGE_BYTES = 64 * 1024 * 1024
PUBLIC_ONLY = "webhooks go only to public internet addresses"
Headers = list[tuple[bytes, bytes]]


@dataclass
class Receiver:
    """A merchant's webhook receiver; `secret` is the one it verifies with."""

    secret: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    huge_sent: int = 0
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        self.requests.append((path, headers, body))

        async def answer(status: int, text: bytes = b"", extra: Headers | None = None) -> None:
            await send({"type": "http.response.start", "status": status, "headers": extra or []})
            await send({"type": "http.response.body", "body": text})

        if path == "/ok":
            try:
                Webhook(self.secret).verify(body, headers)
            except WebhookVerificationError as exc:
                await answer(401, str(exc).encode())
                return
            await answer(200, b'{"received":true}')
        elif path == "/fail":
            await answer(500, b"boom: the database is down \x00\xff")
        elif path == "/busy":
            await answer(503, b"busy", [(b"retry-after", b"120")])
        elif path == "/gone":
            await answer(410, b"this endpoint was removed")
        elif path == "/redirect":
            await answer(302, b"", [(b"location", b"/ok")])
        elif path == "/slow":
            await receive()  # returns only once the sender hangs up
            self.disconnected.set()
        elif path == "/huge":
            await send({"type": "http.response.start", "status": 200, "headers": []})

            async def hang_up() -> None:
                await receive()
                self.disconnected.set()

            watcher = asyncio.create_task(hang_up())
            chunk = b"x" * 65536
            while not self.disconnected.is_set() and self.huge_sent < HUGE_BYTES:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.huge_sent += len(chunk)
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b""})
            await watcher


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    app = Receiver(secret=new_secret())
    async with serving(app, lifespan="off") as url:
        yield app, url


def _signed(secrets: list[str]) -> tuple[bytes, dict[str, str]]:
    body = event_body(
        "payment.succeeded", {"id": "pay_01", "amount": 150}, created_at=datetime.now(UTC), version=1
    )
    return body, sign(body, msg_id=new_message_id(), timestamp=datetime.now(UTC), secrets=secrets)


async def test_a_signed_event_is_delivered_and_verified_by_the_receiver() -> None:
    async with receiver() as (app, url):
        body, headers = _signed([new_secret(), app.secret])  # rotating: the receiver has the old one
        result = await deliver(f"{url}/ok", body, headers, allow_private=True)
    assert (result.outcome, result.status_code, result.error) == (DeliveryOutcome.delivered, 200, None)
    assert result.response_excerpt == '{"received":true}'
    assert result.latency_ms >= 0 and not result.gone
    [(path, got, sent)] = app.requests
    assert path == "/ok"
    assert sent == body
    assert got["content-type"] == "application/json"
    assert got["user-agent"] == "lipapush-webhooks/1"
    assert got["host"] == url.removeprefix("http://")
    assert "cookie" not in got
    assert {k: got[k] for k in headers} == headers


async def test_a_wrong_signature_is_refused_by_the_receiver() -> None:
    async with receiver() as (_app, url):
        body, headers = _signed([new_secret()])
        result = await deliver(f"{url}/ok", body, headers, allow_private=True)
    assert (result.outcome, result.status_code) == (DeliveryOutcome.failed, 401)
    assert (result.error, result.response_excerpt) == ("HTTP 401", "No matching signature found")


async def test_error_answers() -> None:
    async with receiver() as (app, url):
        body, headers = _signed([app.secret])
        failed = await deliver(f"{url}/fail", body, headers, allow_private=True)
        busy = await deliver(f"{url}/busy", body, headers, allow_private=True)
        gone = await deliver(f"{url}/gone", body, headers, allow_private=True)
        redirect = await deliver(f"{url}/redirect", body, headers, allow_private=True)
    assert (failed.outcome, failed.status_code, failed.error, failed.retry_after) == (
        DeliveryOutcome.failed, 500, "HTTP 500", None
    )
    assert failed.response_excerpt == "boom: the database is down \ufffd\ufffd"
    assert (busy.outcome, busy.status_code, busy.retry_after) == (DeliveryOutcome.failed, 503, 120)
    assert (gone.outcome, gone.status_code, gone.gone) == (DeliveryOutcome.gone, 410, True)
    assert gone.error == "HTTP 410 Gone: the receiver asked to stop"
    assert (redirect.outcome, redirect.status_code) == (DeliveryOutcome.failed, 302)
    assert redirect.error == "HTTP 302 to /ok: redirects are not followed, register the final URL"
    assert [path for path, _, _ in app.requests] == ["/fail", "/busy", "/gone", "/redirect"]  # /ok never


async def test_a_slow_receiver_times_out() -> None:
    async with receiver() as (app, url):
        body, headers = _signed([app.secret])
        result = await deliver(f"{url}/slow", body, headers, allow_private=True, timeout=0.3)
        await asyncio.wait_for(app.disconnected.wait(), 10)  # we hung up on it
    assert (result.outcome, result.status_code, result.error) == (
        DeliveryOutcome.failed, None, "no answer within 0.3 s"
    )


async def test_a_huge_answer_is_cut_at_the_cap() -> None:
    async with receiver() as (app, url):
        body, headers = _signed([app.secret])
        result = await deliver(f"{url}/huge", body, headers, allow_private=True)
        await asyncio.wait_for(app.disconnected.wait(), 10)
    assert (result.outcome, result.status_code, result.error) == (DeliveryOutcome.delivered, 200, None)
    assert result.response_excerpt == "x" * EXCERPT_BYTES
    assert RESPONSE_READ_LIMIT < app.huge_sent < HUGE_BYTES  # it was still sending when we hung up


async def test_a_local_receiver_is_refused_without_the_development_setting() -> None:
    async with receiver() as (app, url):
        body, headers = _signed([app.secret])
        plain = await deliver(f"{url}/ok", body, headers, allow_private=False)
        https = await deliver(url.replace("http://", "https://") + "/ok", body, headers, allow_private=False)
    assert (plain.outcome, plain.status_code) == (DeliveryOutcome.failed, None)
    assert plain.error == "refused: use an https:// URL (plain http is allowed only in development)"
    assert https.error is not None and https.error.startswith("refused: ")  # 127.0.0.1 or its port
    assert app.requests == []


@contextlib.asynccontextmanager
async def counting_listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A bare TCP listener on 127.0.0.1 in 8000–8999 (a port public URLs may use) counting accepts."""
    accepted: list[int] = []

    async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    for port in range(8100, 9000):
        with contextlib.suppress(OSError):
            server = await asyncio.start_server(on_connect, "127.0.0.1", port, family=socket.AF_INET)
            break
    else:
        pytest.skip("no free port in 8100-8999")
    async with server:
        yield port, accepted


async def test_the_connect_time_guard_refuses_a_name_resolving_to_loopback() -> None:
    """The URL passes every rule that needs no lookup; the address check when connecting refuses it,
    and nothing connects. The same call with the development setting does connect (the control)."""
    body, headers = _signed([new_secret()])
    async with counting_listener() as (port, accepted):
        refused = await deliver(f"https://localhost:{port}/hooks", body, headers, allow_private=False)
        literal = await deliver(f"https://127.0.0.1:{port}/hooks", body, headers, allow_private=False)
        assert accepted == []
        allowed = await deliver(f"http://localhost:{port}/hooks", body, headers, allow_private=True)
        assert accepted == [1]
    assert refused.error is not None
    assert refused.error.startswith("refused: localhost resolves to ")
    assert refused.error.endswith(f"which is a loopback address; {PUBLIC_ONLY}")
    assert literal.error == f"refused: 127.0.0.1 is a loopback address; {PUBLIC_ONLY}"
    assert (allowed.outcome, allowed.status_code) == (DeliveryOutcome.failed, None)
    assert allowed.error is not None and allowed.error.startswith("the connection failed")


class FakeDns:
    """Scripted answers for the names in `answers`, one list of addresses per lookup, through the running
    loop's getaddrinfo: the resolver `resolve_checked` calls, so its real address check runs on them.
    Other names resolve as usual."""

    def __init__(self, loop: asyncio.AbstractEventLoop, answers: dict[str, list[list[str]]]) -> None:
        self.answers, self.lookups = answers, list[str]()
        self._real = loop.getaddrinfo

    async def __call__(self, host: Any, port: Any, **kwargs: Any) -> list[Any]:
        if host not in self.answers:
            return await self._real(host, port, **kwargs)
        self.lookups.append(host)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))
            for ip in self.answers[host].pop(0)
        ]


async def test_a_name_rebound_to_a_private_address_after_registration_is_refused_at_send_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name is public when registered and at the first delivery, then answers with
    loopback. Each new connection resolves and checks again (no DNS cache), so the second delivery of
    the same sender is refused before any connection; the first went to exactly the checked address."""
    loop = asyncio.get_running_loop()
    public = "93.184.215.14"
    dns = FakeDns(loop, {"rebind.example": [[public], ["127.0.0.1"]]})
    connects: list[tuple[Any, ...]] = []

    async def sock_connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        connects.append(address)
        # Nothing leaves the machine: the "public" server refuses, as a closed port would.
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed {address}")

    monkeypatch.setattr(loop, "getaddrinfo", dns)
    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    url = validate_endpoint_url("https://rebind.example/hooks", allow_private=False)  # registration
    body, headers = _signed([new_secret()])
    async with WebhookSender(allow_private=False, connect_timeout=2, timeout=5) as sender:
        first = await sender.send(url, body, headers)
        second = await sender.send(url, body, headers)
    assert dns.lookups == ["rebind.example", "rebind.example"]
    assert connects == [(public, 443)]
    refused = f"[Errno {errno.ECONNREFUSED}] Connect call failed ('{public}', 443)"
    assert (first.outcome, first.status_code, first.error) == (
        DeliveryOutcome.failed, None, f"could not connect: {refused}"
    )
    assert (second.outcome, second.status_code) == (DeliveryOutcome.failed, None)
    assert second.error == (
        f"refused: rebind.example resolves to 127.0.0.1, which is a loopback address; {PUBLIC_ONLY}"
    )


async def test_a_kept_alive_connection_is_reused_without_a_new_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The address of a pooled connection was checked when it was opened: the next deliveries to the
    same receiver reuse it, with no lookup and no new connection."""
    loop = asyncio.get_running_loop()
    real_connect = loop.sock_connect
    connects: list[tuple[Any, ...]] = []

    async def sock_connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        connects.append(address)
        await real_connect(sock, address)

    async with receiver() as (app, url):
        port = url.rpartition(":")[2]
        dns = FakeDns(loop, {"merchant.example": [["127.0.0.1"], ["127.0.0.1"]]})
        monkeypatch.setattr(loop, "getaddrinfo", dns)
        monkeypatch.setattr(loop, "sock_connect", sock_connect)
        body, headers = _signed([app.secret])
        target = f"http://merchant.example:{port}/ok"
        async with WebhookSender(allow_private=True) as sender:
            results = [await sender.send(target, body, headers) for _ in range(3)]
    assert [r.status_code for r in results] == [200, 200, 200]
    assert dns.lookups == ["merchant.example"]
    assert connects == [("127.0.0.1", int(port))]
    assert app.requests[0][1]["host"] == f"merchant.example:{port}"


async def test_address_literals_are_checked_although_no_lookup_is_made() -> None:
    body, headers = _signed([new_secret()])
    async with counting_listener() as (port, accepted):
        mapped = await deliver(f"https://[::ffff:127.0.0.1]:{port}/hooks", body, headers, allow_private=False)
        legacy = await deliver(f"https://127.1:{port}/hooks", body, headers, allow_private=False)
        assert accepted == []
    assert mapped.error == f"refused: ::ffff:127.0.0.1 is a loopback address; {PUBLIC_ONLY}"
    assert legacy.error is not None and legacy.error.startswith("refused: 127.1 ")


async def test_the_body_is_sent_byte_for_byte() -> None:
    async with receiver() as (app, url):
        body = json.dumps({"type": "payment.succeeded", "data": {"note": "chai ☕"}}, separators=(",", ":"))
        raw = body.encode()
        headers = sign(raw, msg_id="msg_bytes", timestamp=datetime.now(UTC), secrets=[app.secret])
        result = await deliver(f"{url}/ok", raw, headers, allow_private=True)
    assert result.outcome is DeliveryOutcome.delivered
    assert app.requests[0][2] == raw


def _certificate_for_localhost(directory: Path) -> tuple[Path, Path, str]:
    """A throwaway CA and a server certificate valid for the name `localhost` only (not 127.0.0.1)."""
    now = datetime.now(UTC)

    def build(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey,
              *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.DNSName("localhost")])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("webhook test CA", "webhook test CA", ca_key, ca_key, ca=True)
    server = build("localhost", "webhook test CA", server_key, ca_key, ca=False)
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM).decode()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest owns the signal handlers


async def test_https_checks_the_certificate_against_the_name_while_connecting_to_the_checked_address(
    tmp_path: Path,
) -> None:
    """The connection goes to the address the guard resolved, but TLS still sends the URL's name (SNI)
    and verifies the certificate for it: a certificate for `localhost` passes for https://localhost
    and fails for https://127.0.0.1, the same server."""
    cert_file, key_file, ca_pem = _certificate_for_localhost(tmp_path)
    trust = ssl.create_default_context(cadata=ca_pem)
    app = Receiver(secret=new_secret())
    sock, port = bound_socket()
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", ssl_certfile=str(cert_file), ssl_keyfile=str(key_file),
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.005)
        body, headers = _signed([app.secret])
        by_name = await deliver(
            f"https://localhost:{port}/ok", body, headers, allow_private=True, ssl_context=trust
        )
        by_address = await deliver(
            f"https://127.0.0.1:{port}/ok", body, headers, allow_private=True, ssl_context=trust
        )
        untrusted = await deliver(f"https://localhost:{port}/ok", body, headers, allow_private=True)
    finally:
        server.should_exit = True
        await task
        sock.close()
    assert (by_name.outcome, by_name.status_code, by_name.error) == (DeliveryOutcome.delivered, 200, None)
    assert app.requests[0][1]["host"] == f"localhost:{port}"
    for failed in (by_address, untrusted):
        assert (failed.outcome, failed.status_code) == (DeliveryOutcome.failed, None)
        assert failed.error is not None and "CERTIFICATE_VERIFY_FAILED" in failed.error
    assert by_address.error is not None and "127.0.0.1" in by_address.error
    assert len(app.requests) == 1
