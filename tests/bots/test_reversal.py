"""↩️ Reversing a payment in the bot: the owner opens a received payment, taps Reverse, says why, sees
the summary, gets the code in this chat (and by email), types it (a wrong one is refused and the flow
stays), and hears here when M-Pesa confirmed; the payment then reads Reversed."""

from __future__ import annotations

import re

import httpx

from sim.telegram.client import TelegramSimClient
from tests.bots.test_home_wallet_settings import T, has, linked_owner
from tests.conftest import LiveServer
from tests.support.initiators import give_initiator
from tests.web.test_reversals_api import paid
from tests.web.test_usage_api import login


async def test_the_owner_reverses_in_the_chat(
    server: LiveServer, tg: TelegramSimClient, client: httpx.AsyncClient
) -> None:
    tenant, owner = await linked_owner(tg, name="Bot Reversal Duka")
    await give_initiator(tenant.id)
    payment = await paid(client, await login(client, owner.email), phone="0722800111")

    await tg.ask("/transactions", has("Transactions"), timeout=T)
    await tg.press_button("1")
    detail = await tg.wait_for_bot_message(predicate=has("🧾"), timeout=T)
    assert "↩️ Reverse" in detail.button_texts
    await tg.press_button("↩️ Reverse")
    await tg.wait_for_bot_message(predicate=has("Why reverse KES 1,000"), timeout=T)
    summary = await tg.ask("Customer paid twice", has("Reverse "), timeout=T)
    assert summary.content == (
        f"↩️ Reverse KES 1,000 to 0722800111 ({payment['receipt']})?\nReason: Customer paid twice\n"
        "A code goes to this chat and your email; nothing moves until you type it here."
    )
    await tg.press_button("✅ Send me the code")
    code_message = await tg.wait_for_bot_message(predicate=has("the code to reverse"), timeout=T)
    match = re.search(r"is (\d{6})\.", code_message.content)
    assert match
    code = match.group(1)
    await tg.wait_for_bot_message(predicate=has("A 6-digit code went to"), timeout=T)

    wrong = await tg.ask("000000" if code != "000000" else "111111", has("⚠️"), timeout=T)
    assert "That is not the code we sent. 4 tries left." in wrong.content
    await tg.ask(code, has("Sent to M-Pesa"), timeout=T)
    told = await tg.wait_for_bot_message(predicate=has("Reversed:"), timeout=T)
    assert told.content == (
        f"↩️ Reversed: KES 1,000 ({payment['receipt']}) went back to the payer. Reason: Customer paid twice"
    )
