"""ASGI apps served for real on loopback inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # pytest owns Ctrl-C; uvicorn must not swap the handlers out from under it.
        yield


def bound_socket() -> tuple[socket.socket, int]:
    """A listening-ready socket on a free port. proto must be IPPROTO_TCP or asyncio skips TCP_NODELAY,
    and every keep-alive request then waits ~40 ms on Nagle + delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    return sock, int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving_on(
    app: Any, sock: socket.socket, *, lifespan: Literal["auto", "on", "off"] = "on"
) -> AsyncIterator[str]:
    # A long keep-alive: a test's client reuses its connection after slow database checks, and with
    # uvicorn's 5 s default the server may close it at the very moment the next request goes out
    # ("Server disconnected without sending a response" on a loaded CI machine).
    config = uvicorn.Config(
        app, lifespan=lifespan, log_level="warning", timeout_graceful_shutdown=1, timeout_keep_alive=120
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def serving(app: Any, *, lifespan: Literal["auto", "on", "off"] = "on") -> AsyncIterator[str]:
    sock, _ = bound_socket()
    async with serving_on(app, sock, lifespan=lifespan) as url:
        yield url
