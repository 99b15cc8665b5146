"""A webhook receiver for the benches: a small, fast HTTP/1.1 server on 127.0.0.1 answering 200 to POSTs.

Run in its own process, so its CPU is not the sender's (``Receiver`` below starts and stops it):

    python bench/_webhook_receiver.py --port 0 [--record] [--secret whsec_...] [--dump arrivals.json]

- A raw asyncio protocol with httptools (uvicorn's parser) on uvloop when installed: keep-alive,
  pipelining, ``Content-Length`` or chunked bodies. Every POST gets ``200`` with a 2-byte body
  ``ok``; anything else ``404``. It prints ``listening on 127.0.0.1:<port>`` once it accepts.
- ``--record``: keeps, per ``webhook-id`` header, the first arrival time (``time.time()`` when the
  whole request was read) and how many times that id arrived (retries, duplicates).
- ``--secret S`` (repeatable): verifies each POST's Standard Webhooks signature with the
  ``standardwebhooks`` package (any of the secrets; the timestamp must be within its 5-minute
  tolerance); counts good and bad ones and still answers 200 (``--reject-bad`` answers 401 instead).
- ``GET /_stats``: JSON ``{"connections" (accepted), "requests", "posts", "bytes", "verified",
  "bad_signatures", "unsigned", "duplicates", "arrivals": {id: time}, "repeats": {id: count}}``
  (``?arrivals=0`` leaves out the two maps; ``?reset=1`` clears everything after answering).
- SIGTERM / SIGINT: writes the same JSON to ``--dump PATH`` (when given), then exits 0.

Nothing here imports the product, so a bench can point the product's worker at it as a merchant's URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httptools

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
_UNAUTHORIZED = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n\r\nbad signature"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"


@dataclass
class State:
    record: bool
    secrets: list[str]
    reject_bad: bool
    connections: int = 0
    requests: int = 0
    posts: int = 0
    body_bytes: int = 0
    verified: int = 0
    bad_signatures: int = 0
    unsigned: int = 0
    duplicates: int = 0
    arrivals: dict[str, float] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)
    _verifiers: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.secrets:
            from standardwebhooks import Webhook

            self._verifiers = [Webhook(s) for s in self.secrets]

    def snapshot(self, *, arrivals: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "connections": self.connections,
            "requests": self.requests,
            "posts": self.posts,
            "bytes": self.body_bytes,
            "verified": self.verified,
            "bad_signatures": self.bad_signatures,
            "unsigned": self.unsigned,
            "duplicates": self.duplicates,
        }
        if arrivals:
            out["arrivals"] = self.arrivals
            out["repeats"] = {k: v for k, v in self.repeats.items() if v > 1}
        return out

    def reset(self) -> None:
        self.connections = self.requests = self.posts = self.body_bytes = 0
        self.verified = self.bad_signatures = self.unsigned = self.duplicates = 0
        self.arrivals = {}
        self.repeats = {}

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        if "webhook-signature" not in headers:
            self.unsigned += 1
            return False
        for hook in self._verifiers:
            try:
                hook.verify(body, headers, json_parse=False)
            except Exception:  # standardwebhooks raises WebhookVerificationError (and ValueError)
                continue
            self.verified += 1
            return True
        self.bad_signatures += 1
        return False


class _Protocol(asyncio.Protocol):
    __slots__ = ("body", "headers", "parser", "state", "transport", "url", "want_headers")

    def __init__(self, state: State) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        # Headers are only decoded when they are used (recording or verifying).
        self.want_headers = state.record or bool(state.secrets)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.want_headers:
            self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        arrived = time.time()
        state = self.state
        state.requests += 1
        transport = self.transport
        if transport is None:
            return
        method = self.parser.get_method()
        if method == b"POST":
            state.posts += 1
            body = b"".join(self.body)
            state.body_bytes += len(body)
            answer = _OK if self.parser.should_keep_alive() else _OK_CLOSE
            if state.record:
                msg_id = self.headers.get("webhook-id")
                if msg_id is not None:
                    seen = state.repeats.get(msg_id, 0)
                    if seen:
                        state.duplicates += 1
                    else:
                        state.arrivals[msg_id] = arrived
                    state.repeats[msg_id] = seen + 1
            if state.secrets and not state.verify(self.headers, body) and state.reject_bad:
                answer = _UNAUTHORIZED
            transport.write(answer)
        elif method == b"GET" and self.url.startswith(b"/_stats"):
            query = parse_qs(urlsplit(self.url.decode("latin-1")).query)
            payload = json.dumps(state.snapshot(arrivals=query.get("arrivals", ["1"])[0] != "0")).encode()
            if query.get("reset", ["0"])[0] == "1":
                state.reset()
            transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
        else:
            transport.write(_NOT_FOUND)
        if not self.parser.should_keep_alive():
            self._close()


async def serve(args: argparse.Namespace) -> State:
    state = State(record=args.record, secrets=args.secret or [], reject_bad=args.reject_bad)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(state), args.host, args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {args.host}:{port}", flush=True)
    await stop.wait()
    server.close()
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--record", action="store_true", help="keep webhook-id -> first arrival time")
    parser.add_argument("--secret", action="append", help="verify signatures with this whsec_ secret")
    parser.add_argument("--reject-bad", action="store_true", help="answer 401 to a bad or missing signature")
    parser.add_argument("--dump", type=Path, help="write the stats JSON here on SIGTERM/SIGINT")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    state: State | None = None
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            args.loop = "asyncio"
        else:
            state = uvloop.run(serve(args))
    if state is None:
        state = asyncio.run(serve(args))
    if args.dump:
        tmp = Path(str(args.dump) + ".tmp")
        tmp.write_text(json.dumps(state.snapshot()))
        tmp.replace(args.dump)
    return 0


# -- the parent's side ---------------------------------------------------------------------------------
class Receiver:
    """The receiver as a child process: ``with Receiver(record=True) as r: ... r.url ... r.stats()``.

    ``stop()`` (also on leaving the block) sends SIGTERM and, with ``dump``, returns the stats the
    receiver wrote there, arrivals included."""

    def __init__(
        self,
        *,
        record: bool = False,
        secrets: list[str] | None = None,
        reject_bad: bool = False,
        dump: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        loop: str = "uvloop",
        python: str = sys.executable,
    ) -> None:
        self.dump = dump
        argv = [python, str(Path(__file__).resolve()), "--host", host, "--port", str(port), "--loop", loop]
        if record:
            argv.append("--record")
        for s in secrets or []:
            argv += ["--secret", s]
        if reject_bad:
            argv.append("--reject-bad")
        if dump is not None:
            argv += ["--dump", str(dump)]
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline().decode().strip()
        if not line.startswith("listening on "):
            self.popen.kill()
            raise RuntimeError(f"webhook receiver did not start (exit {self.popen.wait()}): {line!r}")
        self.address = line.removeprefix("listening on ")
        self.port = int(self.address.rpartition(":")[2])
        self.pid = self.popen.pid

    def url(self, path: str = "/webhooks", *, host: str | None = None) -> str:
        return f"http://{host or self.address.rpartition(':')[0]}:{self.port}{path}"

    def stats(self, *, arrivals: bool = True, reset: bool = False) -> dict[str, Any]:
        query = f"?arrivals={int(arrivals)}&reset={int(reset)}"
        with urllib.request.urlopen(self.url("/_stats" + query), timeout=30) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def stop(self) -> dict[str, Any] | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        if self.dump is not None and self.dump.exists():
            result: dict[str, Any] = json.loads(self.dump.read_text())
            return result
        return None

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


if __name__ == "__main__":
    sys.exit(main())
