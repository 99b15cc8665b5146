"""The bot inside the web process: polling (default) or webhook (`TELEGRAM_WEBHOOK_SECRET` set)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from bots.app import build_bot, build_dispatcher, prepare
from core.config import Settings
from core.text import has_unstorable, strip_unstorable

log = logging.getLogger(__name__)


@dataclass
class BotRunner:
    settings: Settings
    bot: Bot = field(init=False)
    dp: Dispatcher = field(init=False)
    _task: asyncio.Task[None] | None = None
    _pending: set[asyncio.Task[object]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.bot = build_bot(self.settings)
        self.dp = build_dispatcher(self.settings)

    @property
    def webhook(self) -> bool:
        return bool(self.settings.TELEGRAM_WEBHOOK_SECRET)

    async def start(self) -> None:
        await prepare(self.bot)
        if self.webhook:
            url = f"{self.settings.base_url}/telegram/webhook/{self.settings.TELEGRAM_WEBHOOK_SECRET}"
            await self.bot.set_webhook(
                url,
                secret_token=self.settings.TELEGRAM_WEBHOOK_SECRET,
                allowed_updates=self.dp.resolve_used_update_types(),
            )
            await self.dp.emit_startup(bot=self.bot)
        else:
            await self.bot.delete_webhook()
            self._task = asyncio.create_task(
                self.dp.start_polling(
                    self.bot, handle_signals=False, close_bot_session=False, polling_timeout=20
                )
            )

    async def stop(self) -> None:
        if self._task is not None:
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
        elif self.webhook:
            await self.dp.emit_shutdown(bot=self.bot)
        await self.bot.session.close()

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    def feed(self, data: dict[str, object]) -> None:
        """Answer Telegram at once and handle the update in the background (Telegram waits ~60 s)."""
        if has_unstorable(data):  # stripped, not refused: a refused update is only delivered again
            data = cast(dict[str, object], strip_unstorable(data))
        update = Update.model_validate(data, context={"bot": self.bot})
        task: asyncio.Task[object] = asyncio.create_task(self.dp.feed_update(self.bot, update))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def webhook_router(*, secret: str, feed: Callable[[dict[str, object]], None]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    expected = secret

    @router.post("/telegram/webhook/{secret}")
    async def telegram_webhook(
        secret: str,
        request: Request,
        x_telegram_bot_api_secret_token: str = Header(default=""),
    ) -> JSONResponse:
        # As bytes: compare_digest refuses (TypeError) a str with anything but ASCII in it.
        if not expected or not (
            secrets.compare_digest(secret.encode(), expected.encode())
            and secrets.compare_digest(x_telegram_bot_api_secret_token.encode(), expected.encode())
        ):
            return JSONResponse({"ok": False}, status_code=401)
        feed(await request.json())
        return JSONResponse({"ok": True})

    return router
