"""🏠 Home (and its chart), 👛 Wallet (top-up, postings, invoices) and ⚙️ Settings (alert level, payment
alerts, staff invites, roles): whole conversations with the real bot, exact replies."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import select

from core.audit.models import AuditLog
from core.auth.codes import CodePurpose, issue_code
from core.auth.models import Role, User
from core.billing.invoices import EAT, invoices
from core.billing.wallet import wallets
from core.notify.service import notify
from core.runtime import runtime, unit_of_work
from core.tenants.channels import channels
from core.tenants.models import BillingMode, ChannelKind, Environment, InvoicePeriod, Tenant
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants
from sim.telegram.client import SimMessage, TelegramSimClient
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, set_billing
from tests.support.waiting import wait_for_final

T = 15.0  # deadline for a reply (not a timing assertion)
BOT = "sim123456_bot"  # the stand-in's username for the test token 123456:…
MENU = ["⬅ Menu"]
WALLET_BUTTONS = ["➕ Top up", "📜 Recent postings", "🧾 Invoices", "⬅ Menu"]
SETTINGS_BUTTONS = [
    "🔑 Replace M-Pesa credentials",
    "✏️ Low-balance alert level",
    "🔕 Stop API/USSD payment alerts",
    "👥 Staff",
    "📟 USSD PIN (feature phone)",
    "⬅ Menu",
]


def has(text: str):  # type: ignore[no-untyped-def]
    return lambda m: text in m.content


async def last_id(tg: TelegramSimClient, user_id: int | None = None) -> int:
    transcript = await tg.transcript(user_id)
    return transcript[-1].message_id if transcript else 0


async def press(
    tg: TelegramSimClient, button: str, predicate: Any = None, *, user_id: int | None = None
) -> SimMessage:
    """Press a button and return the first bot reply after it."""
    after = await last_id(tg, user_id)
    await tg.press_button(button, user_id=user_id)
    return await tg.wait_for_bot_message(user_id, predicate, T, after=after)


async def press_answer(tg: TelegramSimClient, button: str) -> dict[str, Any]:
    """Press a button and return how the bot answered the press itself (the alert)."""
    update = await tg.press_button(button)
    deadline = time.monotonic() + T
    while True:
        answer = await tg.callback_answer(update["callback_query"]["id"])
        if answer["answered"] or time.monotonic() > deadline:
            return answer


async def linked_owner(tg: TelegramSimClient, **kw: Any) -> tuple[Tenant, User]:
    """A business from the factories (1 %, KES 500 alert level, floor 0), its owner's chat linked."""
    tenant, owner = await make_tenant(**kw)
    await set_billing(tenant, bps=100, threshold_cents=50_000, floor_cents=0)
    async with unit_of_work() as session:
        code, _ = await issue_code(
            session, purpose=CodePurpose.telegram_link, tenant_id=tenant.id, user_id=owner.id
        )
    await tg.ask(f"/start {code}", has("What would you like to do?"), timeout=T)
    return tenant, owner


async def pay_in_chat(tg: TelegramSimClient, phone: str, amount: int, name: str | None = None) -> SimMessage:
    await tg.ask("/pay", has("Customer's phone number?"), timeout=T)
    await tg.ask(phone, has("Amount in KES"), timeout=T)
    await tg.ask(str(amount), has("Customer name?"), timeout=T)
    after = await last_id(tg)
    if name:
        await tg.send_text(name)
    else:
        await tg.press_button("Skip ⏭")
    return await tg.wait_for_bot_message(
        predicate=lambda m: m.content.startswith(("✅", "❌")), timeout=20, after=after
    )


def eat(at: datetime, fmt: str = "%d %b %H:%M") -> str:
    return at.astimezone(EAT).strftime(fmt)


async def posting_dates(tenant: Tenant) -> list[str]:
    async with unit_of_work(readonly=True) as session:
        page = await wallets.postings(session, tenant_id=tenant.id, cursor=None, limit=10)
    return [eat(p.created_at) for p in page.items]


def wallet_text(*, balance: str, billing: str, month: str, owed: str, extra: str = "") -> str:
    return (
        f"👛 Wallet\nBalance: {balance}\nBilling: {billing} · commission 1%\n"
        f"Commission this month: {month}\nOwed on invoice: {owed}\nLow-balance alert below KES 500.00" + extra
    )


class TestWallet:
    async def test_topup_paid_push_postings_and_the_low_balance_alert(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        tenant, _ = await linked_owner(tg, name="Wallet Shop")
        empty = await tg.ask("/wallet", has("Wallet"), timeout=T)
        assert empty.content == wallet_text(
            balance="KES 0.00", billing="hybrid", month="KES 0.00", owed="KES 0.00"
        )
        assert empty.button_texts == WALLET_BUTTONS
        none = await press(tg, "📜 Recent postings")
        assert none.content == "📜 No postings yet. Top-ups and commission show up here."
        assert none.button_texts == MENU

        ask = await press(tg, "➕ Top up")
        assert ask.content == "How much to top up, in KES? The M-Pesa prompt goes to the business phone."
        assert ask.button_texts == ["✖ Cancel"]
        bad = await tg.ask("5.50", has("⚠️"), timeout=T)
        assert bad.content == (
            "⚠️ M-Pesa only takes whole shillings: send an amount without cents, like 150.\n"
            "Try again, or /cancel."
        )
        hint = await tg.ask("500", has("tap 👛 Wallet"), timeout=T)
        assert hint.content == (
            "When the prompt above says Paid, your wallet is credited: tap 👛 Wallet to see the new balance."
        )
        assert hint.button_texts == ["👛 Wallet"]
        paid = await tg.wait_for_bot_message(predicate=has("Paid: KES 500"), timeout=20)
        match = re.fullmatch(r"✅ Paid: KES 500 from 0712345678\.\nReceipt ([A-Z0-9]{10})", paid.content)
        assert match, paid.content
        receipt = match.group(1)

        credited = await press(tg, "👛 Wallet", has("Wallet credited"))
        assert credited.content == wallet_text(
            balance="KES 500.00",
            billing="hybrid",
            month="KES 0.00",
            owed="KES 0.00",
            extra=f"\n✅ Wallet credited: KES 500.00 from your last top-up (receipt {receipt})",
        )
        assert credited.button_texts == WALLET_BUTTONS

        # a paid customer push: its commission (1 % of 150) comes off the wallet, which is now below
        # the KES 500 alert level, so the alert arrives in this chat
        await pay_in_chat(tg, "0722000111", 150, "Wanjiku")
        alert = await tg.wait_for_bot_message(predicate=has("wallet is down to"), timeout=20)
        assert alert.content == (
            "Wallet Shop: your lipapush wallet is down to KES 498.50 (alert level KES 500.00). "
            "Top up to keep payments flowing."
        )
        after_push = await tg.ask("/wallet", has("Wallet"), timeout=T)
        assert after_push.content == wallet_text(
            balance="KES 498.50",
            billing="hybrid",
            month="KES 1.50",
            owed="KES 0.00",
            extra=f"\n✅ Wallet credited: KES 500.00 from your last top-up (receipt {receipt})",
        )
        listed = await press(tg, "📜 Recent postings")
        commission_at, topup_at = await posting_dates(tenant)
        assert listed.content == (
            "📜 Recent postings (EAT, newest first, last 10)\n"
            f"• {commission_at} · Commission · -KES 1.50\n"
            f"• {topup_at} · Top-up · +KES 500.00"
        )
        assert listed.button_texts == MENU

        home = await tg.ask("/home", has("Total received"), timeout=T)
        assert home.content == (
            "🏠 Wallet Shop\nTotal received: KES 150\n"
            "Payments: 1 (1 paid, 0 not paid, 0 waiting) · success 100%\n"
            "Commission from wallet: KES 1.50\nCommission owed on invoice: KES 0.00\n"
            "Wallet: KES 498.50\n\n"
            "Recent customers\n• Wanjiku 0722000111: KES 150"
        )
        assert home.button_texts == ["📈 Chart", "⬅ Menu"]

    async def test_invoices_empty_then_issued(self, server: LiveServer, tg: TelegramSimClient) -> None:
        tenant, _ = await linked_owner(tg, name="Invoice Shop")
        await set_billing(tenant, mode=BillingMode.invoice, period=InvoicePeriod.daily)
        await tg.ask("/wallet", has("Wallet"), timeout=T)
        empty = await press(tg, "🧾 Invoices")
        assert empty.content == "🧾 No invoices yet. Commission that goes on the invoice is billed daily."
        assert empty.button_texts == MENU

        await pay_in_chat(tg, "0722000333", 275, "Njeri")
        view = await tg.ask("/wallet", has("Wallet"), timeout=T)
        assert view.content == wallet_text(
            balance="KES 0.00", billing="invoice", month="KES 2.75", owed="KES 2.75"
        )
        # 🏠 Home says the wallet paid nothing: the KES 2.75 is owed on the invoice
        home = await tg.ask("/home", has("Total received"), timeout=T)
        assert home.content == (
            "🏠 Invoice Shop\nTotal received: KES 275\n"
            "Payments: 1 (1 paid, 0 not paid, 0 waiting) · success 100%\n"
            "Commission from wallet: KES 0.00\nCommission owed on invoice: KES 2.75\n"
            "Wallet: KES 0.00\n\n"
            "Recent customers\n• Njeri 0722000333: KES 275"
        )
        await tg.ask("/wallet", has("Wallet"), timeout=T)
        accrued = await press(tg, "📜 Recent postings")
        (accrued_at,) = await posting_dates(tenant)
        assert accrued.content == (
            "📜 Recent postings (EAT, newest first, last 10)\n"
            f"• {accrued_at} · Commission (on invoice) · KES 2.75, wallet unchanged"
        )

        async with unit_of_work() as session:
            invoice = await invoices.issue_for(
                session,
                tenant=await tenants.get(session, tenant.id),
                now=datetime.now(UTC) + timedelta(days=1),
                settings=runtime().settings,
            )
            assert invoice is not None
            number, start, end, due = invoice.number, invoice.period_start, invoice.period_end, invoice.due_at
            invoice_id = invoice.id
        day = eat(start, "%d %b")
        assert day == eat(end - timedelta(seconds=1), "%d %b")  # one EAT day
        # the owner hears about the invoice in this chat too
        issued = await tg.wait_for_bot_message(predicate=has(f"invoice {number}"), timeout=20)
        assert issued.content == (
            f"Invoice Shop: invoice {number} for KES 2.75 (commission {day}–{eat(start, '%d %b %Y')}) "
            f"is due on {eat(due, '%d %b %Y')}."
        )
        listed = await press(tg, "🧾 Invoices", has("🧾 Invoices"))
        assert listed.content == (
            f"🧾 Invoices\n• {number} · {day}–{eat(start, '%d %b %Y')} · KES 2.75 · issued · "
            f"due {eat(due, '%d %b %Y')}"
        )
        assert listed.button_texts == MENU

        # invoiced and unpaid is still owed; once the invoice is paid nothing is
        home = await tg.ask("/home", has("Total received"), timeout=T)
        assert "Commission from wallet: KES 0.00\nCommission owed on invoice: KES 2.75\n" in home.content
        async with unit_of_work() as session:
            await invoices.mark_paid(session, invoice_id=invoice_id, by=None, settings=runtime().settings)
        home = await tg.ask("/home", has("Total received"), timeout=T)
        assert "Commission from wallet: KES 0.00\nCommission owed on invoice: KES 0.00\n" in home.content


class TestHomeChart:
    async def test_chart_is_a_png_of_the_last_30_days(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        await linked_owner(tg, name="Chart Shop")
        await tg.ask("/home", has("Total received"), timeout=T)
        nothing = await press(tg, "📈 Chart")
        assert nothing.content == "📈 No finished payments in the last 30 days yet: nothing to chart."
        assert nothing.button_texts == MENU

        await pay_in_chat(tg, "0722000444", 150, "Akinyi")
        failed = await pay_in_chat(tg, "0722002001", 40)
        assert failed.content.startswith("❌ Not paid: KES 40 from 0722002001.")
        home = await tg.ask("/home", has("Total received"), timeout=T)
        assert "Payments: 2 (1 paid, 1 not paid, 0 waiting) · success 50%" in home.content
        photo = await press(tg, "📈 Chart", lambda m: m.photo is not None)
        assert photo.content == (
            "📈 Last 30 days (EAT): KES 150 received in 1 of 2 finished payments · success 50%\n"
            "Bars: KES paid per day · line: success rate"
        )
        assert photo.photo is not None
        largest = photo.photo[-1]
        assert (largest["width"], largest["height"]) == (1000, 500)
        data = await tg.file_bytes(largest["file_id"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.size == (1000, 500)


class TestSettings:
    async def test_view_alert_level_and_replacing_credentials(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        tenant, _ = await linked_owner(tg, name="Settings Shop", environment=Environment.simulator)
        view = await tg.ask("/settings", has("Settings"), timeout=T)
        assert view.content == (
            "⚙️ Settings\nPaybill 174379 · simulator\n"
            "Consumer key ****-key · secret ****cret · passkey ****c919\n✅ Verified\n\n"
            "💳 Billing: hybrid · commission 1% (your rate)\n"
            "🔔 Low-balance alert below KES 500.00\n"
            "📣 Results of API/USSD payments: sent to this chat"
        )
        assert view.button_texts == SETTINGS_BUTTONS

        ask = await press(tg, "✏️ Low-balance alert level")
        assert ask.content == (
            "🔔 Alert me when the wallet drops below how many KES? Send a whole number, like 500."
        )
        assert ask.button_texts == ["✖ Cancel"]
        for text, message in (
            ("abc", "Send the alert level as a whole number of shillings, like 500."),
            ("12.5", "Send the alert level as a whole number of shillings, like 500."),
            ("-5", "Send the alert level as a whole number of shillings, like 500."),
            ("20000000", "The alert level can be at most KES 10,000,000."),
        ):
            reply = await tg.ask(text, has("⚠️"), timeout=T)
            assert reply.content == f"⚠️ {message}\nTry again, or /cancel.", text
            assert reply.button_texts == ["✖ Cancel"]
        done = await tg.ask("1,000", has("✅"), timeout=T)
        assert done.content == (
            "✅ Low-balance alert level set to KES 1,000.00. "
            "I'll message you here when the wallet drops below it."
        )
        assert done.button_texts == ["⚙️ Settings", "⬅ Menu"]
        # the wallet (KES 0) is below the new level: the alert comes here at once
        alert = await tg.wait_for_bot_message(predicate=has("wallet is down to"), timeout=20)
        assert alert.content == (
            "Settings Shop: your lipapush wallet is down to KES 0.00 (alert level KES 1,000.00). "
            "Top up to keep payments flowing."
        )
        async with unit_of_work(readonly=True) as session:
            row = await tenants.get(session, tenant.id)
            assert row.low_balance_threshold_cents == 100_000
        again = await press(tg, "⚙️ Settings")
        assert "🔔 Low-balance alert below KES 1,000.00" in again.content
        # after a successful change, numbers are not read as a new level any more
        other = await tg.ask("2000", timeout=T)
        assert other.content == "I didn't understand that. Use the buttons below, or /help."

        # 🔑 replacing the credentials re-verifies the channel with a new test push
        await press(tg, "🔑 Replace M-Pesa credentials", has("Which M-Pesa environment"))
        await tg.press_button("🧪 Simulator (test money)")
        await tg.wait_for_bot_message(predicate=has("Is it a Paybill or a Till"), timeout=T)
        await tg.press_button("Till (Buy Goods)")
        active = await tg.wait_for_bot_message(predicate=has("Your business is active"), timeout=20)
        assert active.edits and "KES 1 test payment sent to 0712345678" in active.edits[0]
        replaced = await tg.ask("/settings", has("Settings"), timeout=T)
        assert replaced.content.startswith(
            "⚙️ Settings\nTill 174379 · till 174379 · simulator\n"
            "Consumer key ****-key · secret ****cret · passkey ****c919\n✅ Verified\n\n"
        )

    async def test_several_channels_are_listed(self, server: LiveServer, tg: TelegramSimClient) -> None:
        tenant, owner = await linked_owner(tg, name="Branches Shop", environment=Environment.simulator)
        async with unit_of_work() as session:
            row = await tenants.get(session, tenant.id)
            branch = await channels.add(
                session,
                tenant=row,
                name="Westlands <till>",
                data=ChannelIn(environment=Environment.simulator, kind=ChannelKind.till),
                box=runtime().secrets,
                by=owner.id,
            )
            assert not branch.is_primary
        view = await tg.ask("/settings", has("Settings"), timeout=T)
        assert view.content == (
            "⚙️ Settings\nPaybill 174379 · simulator\n"
            "Consumer key ****-key · secret ****cret · passkey ****c919\n✅ Verified\n"
            "📡 Channels: Main (primary) ✅ · Westlands <till> ❌\n"
            "Add or change them in the web panel: Settings → Channels.\n\n"
            "💳 Billing: hybrid · commission 1% (your rate)\n"
            "🔔 Low-balance alert below KES 500.00\n"
            "📣 Results of API/USSD payments: sent to this chat"
        )

    async def test_payment_alerts_toggle(
        self, server: LiveServer, tg: TelegramSimClient, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await linked_owner(tg, name="Alerts Shop")
        key = await make_api_key(tenant=tenant)
        auth = {"Authorization": f"Bearer {key}"}
        view = await tg.ask("/settings", has("Settings"), timeout=T)
        answer = await press_answer(tg, "🔕 Stop API/USSD payment alerts")
        assert (answer["text"], answer["show_alert"]) == ("Payment alerts off", False)
        off = await tg.wait_for_bot_message(predicate=has("payments: not sent"), timeout=T)
        assert off.message_id == view.message_id  # edited in place
        assert off.content.endswith(
            "🔔 Low-balance alert below KES 500.00\n📣 Results of API/USSD payments: not sent"
        )
        assert off.button_texts == [
            "🔑 Replace M-Pesa credentials",
            "✏️ Low-balance alert level",
            "🔔 Tell me about API/USSD payments",
            "👥 Staff",
            "📟 USSD PIN (feature phone)",
            "⬅ Menu",
        ]
        r = await client.post("/api/stk-push", json={"phone": "0722000555", "amount": 70}, headers=auth)
        await wait_for_final(client, key, r.json()["id"])
        async with unit_of_work(readonly=True) as session:
            assert await notify.for_tenant(session, tenant_id=tenant.id, kind="payment.result") == []

        answer = await press_answer(tg, "🔔 Tell me about API/USSD payments")
        assert answer["text"] == "Payment alerts on"
        on = await tg.wait_for_bot_message(predicate=has("payments: sent to this chat"), timeout=T)
        assert on.button_texts == SETTINGS_BUTTONS
        r = await client.post("/api/stk-push", json={"phone": "0722000556", "amount": 80}, headers=auth)
        note = await tg.wait_for_bot_message(predicate=has("via API"), timeout=20)
        assert re.fullmatch(r"✅ Paid: KES 80 from 0722000556\.\nReceipt [A-Z0-9]{10}\nvia API", note.content)
        async with unit_of_work(readonly=True) as session:
            actions = list(
                await session.scalars(
                    select(AuditLog.detail)
                    .where(AuditLog.tenant_id == tenant.id, AuditLog.action == "settings.payment_alerts")
                    .order_by(AuditLog.id)
                )
            )
        assert actions == [
            {"notify_owner_on_payments": False, "via": "telegram"},
            {"notify_owner_on_payments": True, "via": "telegram"},
        ]


class TestStaff:
    async def test_invite_a_cashier_who_joins_with_the_code(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        tenant, owner = await linked_owner(tg, name="Staff Shop")
        assert tg.user is not None
        owner_chat = tg.user.id
        await tg.ask("/settings", has("Settings"), timeout=T)
        staff = await press(tg, "👥 Staff")
        assert staff.content == (
            f"👥 Staff of Staff Shop\n• Owner: {owner.email} · on Telegram\n\n"
            "Invite someone: they get a one-time code to send to this bot."
        )
        assert staff.button_texts == ["➕ Invite cashier", "➕ Invite manager", "⬅ Menu"]

        invite = await press(tg, "➕ Invite cashier")
        match = re.search(r"start=([A-Za-z0-9_-]+)", invite.content)
        assert match, invite.content
        code = match.group(1)
        assert invite.content == (
            "✉️ Cashier invitation for Staff Shop\n"
            "Send this link to the person you are inviting:\n"
            f"https://t.me/{BOT}?start={code}\n"
            f"or ask them to send /start {code} to @{BOT}.\n"
            "The code works once, within 30 minutes."
        )
        assert invite.button_texts == MENU
        async with unit_of_work(readonly=True) as session:
            audit = (
                await session.execute(
                    select(AuditLog.user_id, AuditLog.detail).where(
                        AuditLog.tenant_id == tenant.id, AuditLog.action == "staff.invited"
                    )
                )
            ).all()
        assert [tuple(a) for a in audit] == [(owner.id, {"role": "cashier", "via": "telegram"})]

        await tg.create_user("Baraka", user_id=owner_chat + 3_100_000)
        joined = await tg.ask(f"/start {code}", has("linked"), timeout=T)
        assert joined.content == "🔗 This chat is now linked to Staff Shop (cashier)."
        menu = await tg.wait_for_bot_message(predicate=has("What would you like to do?"), timeout=T)
        assert menu.button_texts == ["💸 Request payment", "📒 Transactions"]
        for command, who in (
            ("/settings", "owner"),
            ("/wallet", "owner or manager"),
            ("/home", "owner or manager"),
        ):
            refusal = await tg.ask(command, has("⚠️"), timeout=T)
            assert refusal.content == f"⚠️ This is for the {who} of Staff Shop.\nTry again, or /cancel.", (
                command
            )
        used = await tg.ask(f"/start {code}", has("not valid"), timeout=T)
        assert "it may have expired or been used" in used.content

        listed = await press(tg, "👥 Staff", user_id=owner_chat)
        assert listed.content == (
            f"👥 Staff of Staff Shop\n• Owner: {owner.email} · on Telegram\n"
            "• Cashier: Baraka · on Telegram\n\n"
            "Invite someone: they get a one-time code to send to this bot."
        )
        manager_invite = await press(tg, "➕ Invite manager", user_id=owner_chat)
        assert manager_invite.content.startswith("✉️ Manager invitation for Staff Shop\n")

    async def test_staff_pressing_owner_only_buttons_are_refused(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        """Buttons stay on old messages: when the chat's role changes (here the owner's phone joins as
        staff), every press is checked again."""
        tenant, _ = await linked_owner(tg, name="Refuse Shop")
        await tg.ask("/home", has("Total received"), timeout=T)
        await tg.ask("/wallet", has("Wallet"), timeout=T)
        await tg.ask("/settings", has("Settings"), timeout=T)
        await press(tg, "👥 Staff")
        invite = await press(tg, "➕ Invite manager")
        code = re.search(r"start=([A-Za-z0-9_-]+)", invite.content)
        assert code
        joined = await tg.ask(f"/start {code.group(1)}", has("linked"), timeout=T)
        assert joined.content == "🔗 This chat is now linked to Refuse Shop (manager)."

        owner_only = "This is for the owner of Refuse Shop."
        for button in (
            "🔑 Replace M-Pesa credentials",
            "✏️ Low-balance alert level",
            "🔕 Stop API/USSD payment alerts",
            "👥 Staff",
            "➕ Invite cashier",
            "➕ Invite manager",
        ):
            answer = await press_answer(tg, button)
            assert (answer["text"], answer["show_alert"]) == (owner_only, True), button
        refusal = await tg.ask("/settings", has("⚠️"), timeout=T)
        assert refusal.content == f"⚠️ {owner_only}\nTry again, or /cancel."
        # a manager may see the wallet and the chart
        postings = await press(tg, "📜 Recent postings")
        assert postings.content == "📜 No postings yet. Top-ups and commission show up here."
        chart = await press(tg, "📈 Chart")
        assert chart.content == "📈 No finished payments in the last 30 days yet: nothing to chart."

        async with unit_of_work() as session:
            cashier_code, _ = await issue_code(
                session, purpose=CodePurpose.staff_invite, tenant_id=tenant.id, role=Role.cashier
            )
        await tg.ask(f"/start {cashier_code}", has("(cashier)"), timeout=T)
        owner_or_manager = "This is for the owner or manager of Refuse Shop."
        for button in ("➕ Top up", "📜 Recent postings", "🧾 Invoices", "📈 Chart"):
            answer = await press_answer(tg, button)
            assert (answer["text"], answer["show_alert"]) == (owner_or_manager, True), button
        for button in ("✏️ Low-balance alert level", "➕ Invite cashier"):
            answer = await press_answer(tg, button)
            assert (answer["text"], answer["show_alert"]) == (owner_only, True), button
        async with unit_of_work(readonly=True) as session:
            row = await tenants.get(session, tenant.id)
            assert row.notify_owner_on_payments is True
            invited = await session.scalars(
                select(AuditLog.detail).where(
                    AuditLog.tenant_id == tenant.id, AuditLog.action == "staff.invited"
                )
            )
            assert list(invited) == [{"role": "manager", "via": "telegram"}]  # only the owner's own invite
