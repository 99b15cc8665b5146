"""The bot inside a real `lipapush serve` process, talking HTTP to the Bot API stand-in process:
a new merchant goes from /start to a paid push and an Excel document in the chat."""

from __future__ import annotations

import io

import openpyxl

from sim.telegram.client import TelegramSimClient
from tests.bots.test_conversations import activate_simulator_channel, has, signup_in_chat
from tests.e2e.conftest import E2E_BOT_TOKEN, Serve

T = 20.0


async def test_start_to_paid_push_and_excel_in_the_chat(serve: Serve) -> None:
    async with TelegramSimClient(serve.telegram_url, E2E_BOT_TOKEN, timeout=20) as tg:
        await tg.create_user("Njeri", user_id=880_000_001)
        await signup_in_chat(tg, name="E2E Chat Shop")
        await activate_simulator_channel(tg)
        await tg.ask("/pay", has("Customer's phone number?"), timeout=T)
        await tg.ask("0722000111", has("Amount in KES"), timeout=T)
        await tg.ask("150", has("Customer name?"), timeout=T)
        paid = await tg.ask("Wanjiku", has("Paid"), timeout=T)
        assert paid.content.startswith("✅ Paid: KES 150 from Wanjiku (0722000111).\nReceipt ")
        await tg.ask("/customers", has("Customers"), timeout=T)
        await tg.press_button("📤 Export to Excel")
        doc = await tg.wait_for_bot_message(predicate=lambda m: m.document is not None, timeout=T)
        assert doc.document is not None
        ws = openpyxl.load_workbook(io.BytesIO(await tg.file_bytes(doc.document["file_id"]))).active
        rows = list(ws.iter_rows(values_only=True))
        assert rows[1][:5] == ("Wanjiku", "254722000111", 1, 1, 150)
