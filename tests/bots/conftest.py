from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from sim.telegram.client import TelegramSimClient
from tests.conftest import BOT_TOKEN, LiveServer

_ids = itertools.count(700_000_001)


@pytest.fixture
async def tg(server: LiveServer) -> AsyncIterator[TelegramSimClient]:
    """A fresh Telegram user talking to the real bot (aiogram polling the Bot API stand-in)."""
    async with TelegramSimClient(server.telegram_url, BOT_TOKEN, timeout=15) as client:
        await client.create_user("Amina", user_id=next(_ids))
        yield client
