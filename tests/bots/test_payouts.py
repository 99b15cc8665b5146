"""💸 Paying out from the bot: the owner's /payout (number, amount, name, the confirmation screen, then
M-Pesa pays it in the simulator and 🔄 Check says so), a payout M-Pesa refuses (the owner is told in the
chat), a cashier refused until the owner allows it, then paying out once allowed; 💰 /balance with 🔄
Refresh, and 🏠 Home's balance line."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
from sqlalchemy import select

from core.auth.models import User
from core.billing.periods import EAT
from core.db import utcnow
from core.lookups.use_cases import balances
from core.payouts.models import Payout, PayoutSource, PayoutStatus
from core.runtime import unit_of_work
from sim.telegram.client import SimMessage, TelegramSimClient
from tests.bots.test_home_wallet_settings import T, has, press
from tests.bots.test_transactions import join_as_cashier, link_chat
from tests.conftest import LiveServer
from tests.support.payouts import add_payout_channel, paying_business, sim_b2c_requests, wait_final

ASK_PHONE = "💸 Pay out\nThe recipient's M-Pesa number? (07…, 01… or +254…)"
ASK_AMOUNT = "Amount in KES? (whole shillings, at least 10)"
ASK_NAME = "Who is it for? (optional: kept with the payout; M-Pesa tells the registered name)"


async def payouts_of(tenant_id: uuid.UUID) -> list[Payout]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Payout).where(Payout.tenant_id == tenant_id).order_by(Payout.created_at)
            )
        )


async def edited(tg: TelegramSimClient, message_id: int, starts: str, *, timeout: float = T) -> SimMessage:
    """Bot message `message_id` once its text starts with `starts` (it is edited in place)."""
    return await tg.wait_for_bot_message(
        predicate=lambda m: m.message_id == message_id and m.content.startswith(starts), timeout=timeout
    )


def clock(at: datetime | None) -> str:
    """When M-Pesa gave a balance, as the bot says it (a balance is minutes old here)."""
    assert at is not None
    local, today = at.astimezone(EAT), utcnow().astimezone(EAT).date()
    return f"{'today' if local.date() == today else 'yesterday'} {local:%H:%M}"


class TestOwner:
    async def test_a_payout_asked_confirmed_and_paid(self, server: LiveServer, tg: TelegramSimClient) -> None:
        pb = await paying_business(server, name="Bot Payout Duka")
        await link_chat(tg, pb.tenant, pb.owner.id)

        ask = await tg.ask("/payout", has("Pay out"), timeout=T)
        assert (ask.content, ask.button_texts) == (ASK_PHONE, ["✖ Cancel"])
        bad = await tg.ask("12345", has("⚠️"), timeout=T)
        assert bad.content.startswith("⚠️ '12345' is not a Kenyan mobile number.")
        assert (await tg.ask("0712345678", has("Amount"), timeout=T)).content == ASK_AMOUNT
        small = await tg.ask("5", has("⚠️"), timeout=T)
        assert (
            small.content == "⚠️ A payout is at least KES 10 (M-Pesa's B2C minimum).\nTry again, or /cancel."
        )
        name = await tg.ask("1,500", has("Who is it for?"), timeout=T)
        assert (name.content, name.button_texts) == (ASK_NAME, ["Skip ⏭", "✖ Cancel"])
        confirm = await tg.ask("Wanjiru", has("Send"), timeout=T)
        assert confirm.content == (
            "💸 Send KES 1,500 to 0712345678 (Wanjiru) through “Payouts”? It cannot be undone."
        )
        assert confirm.button_texts == ["✅ Send", "✖ Cancel"]
        assert await payouts_of(pb.tenant.id) == []  # nothing moves before the confirmation

        await tg.press_button("✅ Send")
        sent = await edited(tg, confirm.message_id, "⏳")
        assert sent.content == (
            "⏳ KES 1,500 to Wanjiru (0712345678): on its way\n"
            "Sent to M-Pesa through “Payouts”. I tell you here if M-Pesa does not pay it."
        )
        assert sent.button_texts == ["🔄 Check"]
        [payout] = await payouts_of(pb.tenant.id)
        assert (payout.phone, payout.amount, payout.name, payout.source, payout.initiated_by_id) == (
            "254712345678",
            1500,
            "Wanjiru",
            PayoutSource.telegram,
            pb.owner.id,
        )
        assert payout.idempotency_key == f"telegram:{tg.user.id if tg.user else 0}:{confirm.message_id}"

        paid = await wait_final(payout.id)
        assert paid.status is PayoutStatus.success and paid.receipt
        await tg.press_button("🔄 Check")
        checked = await edited(tg, confirm.message_id, "✅")
        assert checked.content == (
            f"✅ KES 1,500 to {paid.recipient_name} (0712345678): paid, receipt {paid.receipt}"
        )
        assert checked.button_texts == []
        # one B2C request reached M-Pesa: the confirmation sent it once
        assert len(await sim_b2c_requests(pb.sim, pb.short_code)) == 1

    async def test_cancelled_at_the_confirmation_and_a_refused_payout(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        pb = await paying_business(server, name="Bot Refused Payout")
        await link_chat(tg, pb.tenant, pb.owner.id)
        await tg.ask("/payout", has("Pay out"), timeout=T)
        await tg.ask("0722000111", has("Amount"), timeout=T)
        await tg.ask("300", has("Who is it for?"), timeout=T)
        after = (await tg.transcript())[-1].message_id
        await tg.press_button("Skip ⏭")
        confirm = await tg.wait_for_bot_message(predicate=has("Send"), timeout=T, after=after)
        assert confirm.content == "💸 Send KES 300 to 0722000111 through “Payouts”? It cannot be undone."
        await tg.press_button("✖ Cancel")
        assert (
            await edited(tg, confirm.message_id, "Cancelled")
        ).content == "Cancelled. Nothing was changed."
        assert await payouts_of(pb.tenant.id) == []

        # 2040: M-Pesa refuses an unregistered recipient; the owner hears of it here
        await tg.ask("/payout", has("Pay out"), timeout=T)
        await tg.ask("0722002040", has("Amount"), timeout=T)
        await tg.ask("250", has("Who is it for?"), timeout=T)
        confirm = await tg.ask("Otieno", has("Send"), timeout=T)
        await tg.press_button("✅ Send")
        await edited(tg, confirm.message_id, "⏳")
        [payout] = await payouts_of(pb.tenant.id)
        failed = await wait_final(payout.id)
        assert failed.status is PayoutStatus.failed
        told = await tg.wait_for_bot_message(predicate=has("Payout not paid"), timeout=T)
        assert told.content == f"⚠️ Payout not paid: KES 250 to Otieno (0722002040). {failed.result_desc}"

    async def test_a_business_with_two_payout_channels_picks_one(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        pb = await paying_business(server, name="Two Channel Duka")
        salaries, _ = await add_payout_channel(server, pb.tenant, pb.owner, name="Salaries")
        await link_chat(tg, pb.tenant, pb.owner.id)
        which = await tg.ask("/payout", has("Which channel"), timeout=T)
        assert which.content == "💸 Pay out\nWhich channel pays it?"
        assert which.button_texts == ["Payouts", "Salaries", "✖ Cancel"]
        picked = await press(tg, "Salaries", has("Through"))
        assert picked.content == "Through “Salaries”.\n" + ASK_PHONE
        await tg.ask("0722000444", has("Amount"), timeout=T)
        await tg.ask("120", has("Who is it for?"), timeout=T)
        confirm = await tg.ask("Njeri", has("Send"), timeout=T)
        assert (
            confirm.content
            == "💸 Send KES 120 to 0722000444 (Njeri) through “Salaries”? It cannot be undone."
        )
        await tg.press_button("✅ Send")
        await edited(tg, confirm.message_id, "⏳")
        [payout] = await payouts_of(pb.tenant.id)
        assert payout.channel_id == salaries


class TestStaff:
    async def test_a_cashier_is_refused_until_the_owner_allows_it(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        pb = await paying_business(server, name="Cashier Payout Duka")
        await join_as_cashier(tg, pb.tenant, pb.owner.id)
        refusal = (
            "⚠️ Paying out is for the owner of Cashier Payout Duka, and staff the owner allowed to pay out: "
            "ask the owner to allow it for you.\nTry again, or /cancel."
        )
        assert (await tg.ask("/payout", has("⚠️"), timeout=T)).content == refusal
        assert (await tg.ask("/payouts_bulk", has("⚠️"), timeout=T)).content == refusal
        balance = await tg.ask("/balance", has("⚠️"), timeout=T)
        assert (
            balance.content
            == "⚠️ This is for the owner or manager of Cashier Payout Duka.\nTry again, or /cancel."
        )
        assert await payouts_of(pb.tenant.id) == []

        assert tg.user is not None
        async with unit_of_work() as session:  # the owner allows it (their use case is the panel's)
            cashier = await session.scalar(select(User).where(User.telegram_user_id == tg.user.id))
            assert cashier is not None
            cashier.may_pay_out = True
        assert (await tg.ask("/payout", has("Pay out"), timeout=T)).content == ASK_PHONE
        await tg.ask("0722000333", has("Amount"), timeout=T)
        await tg.ask("400", has("Who is it for?"), timeout=T)
        confirm = await tg.ask("Akinyi", has("Send"), timeout=T)
        await tg.press_button("✅ Send")
        sent = await edited(tg, confirm.message_id, "⏳")
        # the owner is told of a failure; a cashier cannot read payouts, so no 🔄 Check
        assert sent.content == (
            "⏳ KES 400 to Akinyi (0722000333): on its way\n"
            "Sent to M-Pesa through “Payouts”. The owner is told if M-Pesa does not pay it."
        )
        assert sent.button_texts == []
        [payout] = await payouts_of(pb.tenant.id)
        assert payout.initiated_by_id == cashier.id
        assert (await wait_final(payout.id)).status is PayoutStatus.success


class TestBalance:
    async def test_balance_refresh_and_home(self, server: LiveServer, tg: TelegramSimClient) -> None:
        pb = await paying_business(server, name="Bot Balance Duka")
        await link_chat(tg, pb.tenant, pb.owner.id)
        [first] = (await balances(pb.actor)).channels
        shown = await tg.ask("/balance", has("M-Pesa balance"), timeout=T)
        assert shown.content == (
            "💰 M-Pesa balance\n\n"
            f"Payouts · B2C {pb.short_code}\n"
            "Utility: KES 100,000.00 · Working: KES 0.00\n"
            f"As of {clock(first.as_of)} (EAT)\n\n"
            "Payouts are paid from the Utility account."
        )
        assert shown.button_texts == ["🔄 Refresh", "⬅ Menu"]

        async with httpx.AsyncClient() as sim:  # M-Pesa's figure moves: the refresh shows it
            r = await sim.post(f"{pb.sim}/_sim/balance", json={"shortcode": pb.short_code, "utility": 42_000})
            assert r.status_code == 200, r.text
        await tg.press_button("🔄 Refresh")
        fresh = await tg.wait_for_bot_message(
            predicate=lambda m: m.message_id == shown.message_id and "42,000.00" in m.content, timeout=T
        )
        [latest] = (await balances(pb.actor)).channels
        assert latest.as_of is not None and latest.lookup_id != first.lookup_id
        assert fresh.content == (
            "💰 M-Pesa balance\n\n"
            f"Payouts · B2C {pb.short_code}\n"
            "Utility: KES 42,000.00 · Working: KES 0.00\n"
            f"As of {clock(latest.as_of)} (EAT)\n\n"
            "Payouts are paid from the Utility account."
        )

        home = await tg.ask("/home", has("Total received"), timeout=T)
        assert f"\nM-Pesa balance, Payouts: KES 42,000.00 ({clock(latest.as_of)})" in home.content
        assert home.button_texts == ["📈 Chart", "💰 M-Pesa balance", "💸 Pay out", "⬅ Menu"]
        again = await press(tg, "💰 M-Pesa balance")
        assert again.content == fresh.content
