"""Text Postgres cannot store (NUL) typed into the bot is stripped, not refused: refusing an update
would only make Telegram deliver it again. Polled updates (the Bot API stand-in) and webhook updates."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from core.runtime import unit_of_work
from core.tenants.models import Tenant
from sim.telegram.client import TelegramSimClient
from tests.bots.test_conversations import T, has, signup_in_chat
from tests.bots.test_webhook import SECRET, start_update
from tests.conftest import LiveServer
from tests.support.servers import serving
from web.telegram import BotRunner, webhook_router


def no_internal_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage() for r in bad]


async def test_a_business_name_typed_with_nul_is_stored_without_it(
    server: LiveServer, tg: TelegramSimClient, caplog: pytest.LogCaptureFixture
) -> None:
    email = await signup_in_chat(tg, name="Kiosk\x00 ya Amina\x00")
    async with unit_of_work(readonly=True) as session:
        name = await session.scalar(select(Tenant.name).where(Tenant.email == email))
    assert name == "Kiosk ya Amina"
    no_internal_errors(caplog)


async def test_a_webhook_update_with_nul_is_handled_stripped(
    server: LiveServer, tg: TelegramSimClient, caplog: pytest.LogCaptureFixture
) -> None:
    runner: BotRunner = server.app.state.bot_runner
    app = FastAPI()
    app.include_router(webhook_router(secret=SECRET, feed=runner.feed))
    assert tg.user is not None
    await tg.send_text("hi")
    update = start_update(tg.user.id, 11)
    update["message"]["text"] = "/st\x00art"  # type: ignore[index]
    update["message"]["from"]["first_name"] = "Ho\x00ok"  # type: ignore[index]
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        ok = await http.post(f"/telegram/webhook/{SECRET}", json=update, headers=headers)
        assert (ok.status_code, ok.json()) == (200, {"ok": True})
        welcome = await tg.wait_for_bot_message(predicate=has("Welcome to lipapush"), timeout=T)
        assert welcome.button_texts == ["🆕 Create my business", "🔗 Link an existing account"]
        # A secret that is not ASCII is a wrong secret, not a crash.
        wrong = await http.post("/telegram/webhook/%C3%A9", json=update, headers=headers)
        assert wrong.status_code == 401
    no_internal_errors(caplog)
