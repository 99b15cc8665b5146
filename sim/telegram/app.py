"""A local Telegram Bot API server: real bot clients (aiogram) talk to it as to api.telegram.org.

Each token is its own bot with its own users, chats, update queue and files, so one server can stand in for
every merchant bot at once. Tests play the users through the ``/_sim`` control routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sim.telegram.controls import control_router
from sim.telegram.methods import call_method
from sim.telegram.params import BotApiError, read_params
from sim.telegram.state import BotState

_TOKEN = re.compile(r"\d{1,20}:[^\s/]+")


class TelegramSimulator:
    """Every bot the server has seen, created on first use of its token."""

    def __init__(self, tokens: set[str] | None) -> None:
        self.tokens = set(tokens) if tokens is not None else None
        self.bots: dict[str, BotState] = {}

    def bot(self, token: str) -> BotState:
        known = _TOKEN.fullmatch(token) is not None if self.tokens is None else token in self.tokens
        if not known:
            raise BotApiError(401, "Unauthorized")
        bot = self.bots.get(token)
        if bot is None:
            bot = self.bots[token] = BotState(token)
        return bot

    async def reset(self, token: str | None = None) -> None:
        for key in [token] if token is not None else list(self.bots):
            bot = self.bots.pop(key, None)
            if bot is not None:
                await bot.close()


async def _unless_disconnected(request: Request, call: Coroutine[Any, Any, Any]) -> Any:
    """Run a long poll only while its client is still there.

    A poller that went away (a stopped Dispatcher) must not linger holding the bot's poll slot for up to
    its timeout, nor keep the server from shutting down promptly.
    """
    task = asyncio.ensure_future(call)

    async def disconnected() -> None:
        # The body has been read, so the next message the server can deliver is the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise _ClientGone
    return task.result()


class _ClientGone(Exception):
    """Nobody is left to read the answer."""


def _envelope(exc: BotApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.code)


def create_app(*, tokens: set[str] | None = None) -> FastAPI:
    """Build a simulator app; routes are relative so it can be mounted.

    ``tokens`` None accepts any token shaped like ``<digits>:<text>``; otherwise only the listed ones.
    """
    sim = TelegramSimulator(tokens)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sim.reset()

    app = FastAPI(
        title="Telegram Bot API simulator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.telegram_sim = sim

    async def on_bot_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BotApiError)
        return _envelope(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        # Control routes keep FastAPI errors; everything else answers like the Bot API.
        if "/_sim/" not in request.url.path and exc.status_code in (404, 405):
            return _envelope(BotApiError(404, "Not Found"))
        return await http_exception_handler(request, exc)

    async def on_client_gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)

    app.add_exception_handler(BotApiError, on_bot_api_error)
    app.add_exception_handler(_ClientGone, on_client_gone)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

    @app.api_route("/bot{token}/{method}", methods=["GET", "POST"])
    async def bot_api(token: str, method: str, request: Request) -> Response:
        bot = sim.bot(token)
        params = await read_params(request)
        call = call_method(bot, method, params)
        if method.lower() != "getupdates":
            result: Any = await call
        else:
            result = await _unless_disconnected(request, call)
        return JSONResponse({"ok": True, "result": result})

    @app.get("/file/bot{token}/{file_path:path}")
    async def download(token: str, file_path: str) -> Response:
        stored = sim.bot(token).files.by_path.get(file_path)
        if stored is None:
            raise BotApiError(404, "Not Found")
        return Response(stored.data, media_type=stored.mime_type or "application/octet-stream")

    app.include_router(control_router(sim.bot, sim.reset))
    return app


def run(host: str = "127.0.0.1", port: int = 8081, tokens: set[str] | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(tokens=tokens), host=host, port=port)
