"""Webhook mode: updates POSTed to /telegram/webhook/{secret} with the secret-token header."""

from __future__ import annotations

import time

import httpx
from fastapi import FastAPI

from sim.telegram.client import TelegramSimClient
from tests.bots.test_conversations import T, has
from tests.conftest import LiveServer
from tests.support.servers import serving
from web.telegram import BotRunner, webhook_router

SECRET = "webhook-secret-0123456789"


def start_update(user_id: int, update_id: int) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            "chat": {"id": user_id, "type": "private", "first_name": "Hook"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Hook"},
        },
    }


async def test_webhook_checks_the_secret_and_handles_the_update(
    server: LiveServer, tg: TelegramSimClient
) -> None:
    # The running app's bot and dispatcher, fed through the webhook route instead of polling.
    runner: BotRunner = server.app.state.bot_runner
    app = FastAPI()
    app.include_router(webhook_router(secret=SECRET, feed=runner.feed))
    assert tg.user is not None
    await tg.send_text("hi")  # the user has written to the bot first, as Telegram requires
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        wrong_header = await http.post(
            f"/telegram/webhook/{SECRET}",
            json=start_update(tg.user.id, 1),
            headers={"X-Telegram-Bot-Api-Secret-Token": "nope"},
        )
        wrong_path = await http.post(
            "/telegram/webhook/guess", json=start_update(tg.user.id, 2), headers=headers
        )
        assert (wrong_header.status_code, wrong_path.status_code) == (401, 401)
        ok = await http.post(f"/telegram/webhook/{SECRET}", json=start_update(tg.user.id, 3), headers=headers)
        assert (ok.status_code, ok.json()) == (200, {"ok": True})
        welcome = await tg.wait_for_bot_message(predicate=has("Welcome to lipapush"), timeout=T)
        assert welcome.button_texts == ["🆕 Create my business", "🔗 Link an existing account"]
