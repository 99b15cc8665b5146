"""📶 WiFi in the bot for hotspot providers: today's sales, routers and who is online, printed cards
as a document, revoking a voucher, the subscription order: whole conversations with the real bot,
the RouterOS stand-in, the Daraja simulator and the Pesapal stand-in."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from core.audit.models import AuditLog
from core.auth.codes import CodePurpose, issue_code
from core.auth.models import Role
from core.billing.models import SubscriptionPeriod, SubscriptionPlan
from core.db import utcnow
from core.hotspot.models import Plan, PlanKind, Voucher, VoucherStatus
from core.hotspot.reports import EAT
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, Tenant, TenantKind
from sim.routeros import RouterSim
from sim.telegram.client import TelegramSimClient
from tests.bots.test_home_wallet_settings import has, press
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, make_user
from tests.support.waiting import wait_until
from tests.web.test_captive import buyer, unique_ip

T = 15.0
WIFI_BUTTONS = ["🔄 Check routers", "🎟 Print vouchers", "⛔ Revoke a voucher", "💳 Subscription", "⬅ Menu"]


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw") as s:
        yield s


async def provider_chat(tg: TelegramSimClient, sim: RouterSim, *, role: Role = Role.owner):  # type: ignore[no-untyped-def]
    tenant, owner = await make_tenant(name=f"Kangemi WiFi {random.randint(100, 999)}")
    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant.id)
        assert t is not None
        t.kind, t.billing_mode = TenantKind.hotspot, BillingMode.subscription
        t.subscription_until = utcnow() + timedelta(days=10)
        r = await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(name="gate", host="127.0.0.1", port=sim.port, username="api", password="router-pw"),
            box=runtime().secrets,
            by=owner.id,
        )
        plan = Plan(tenant_id=tenant.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        session.add(plan)
        await session.flush()
        until, rid, pid = t.subscription_until, r.id, plan.id
    user = owner if role is Role.owner else await make_user(tenant=tenant, role=role)
    async with unit_of_work() as session:
        code, _ = await issue_code(
            session, purpose=CodePurpose.telegram_link, tenant_id=tenant.id, user_id=user.id
        )
    await tg.ask(f"/start {code}", has("What would you like to do?"), timeout=T)
    return tenant, rid, pid, until


def today() -> str:
    return utcnow().astimezone(EAT).strftime("%d %b")


async def buy(client: httpx.AsyncClient, tenant: Tenant, rid: uuid.UUID, pid: uuid.UUID) -> str:
    r = await client.post(
        f"/api/captive/{tenant.id}/initiate-mpesa",
        json={"router_id": str(rid), "plan_id": str(pid), "phone": buyer(), "ip": unique_ip()},
    )
    assert r.status_code == 201, r.text
    url = r.json()["status_url"]
    box: list[str] = []

    async def usable() -> bool:
        s = (await client.get(url)).json()
        if s.get("voucher") and s["voucher"]["usable"]:
            box.append(s["voucher"]["code"])
        return bool(box)

    await wait_until(usable)
    return box[0]


async def test_provider_sees_sales_routers_prints_cards_and_revokes(
    server: LiveServer, tg: TelegramSimClient, sim: RouterSim
) -> None:
    tenant, rid, pid, until = await provider_chat(tg, sim)
    menu = await tg.ask("/start", has("What would you like to do?"), timeout=T)
    assert menu.button_texts[0] == "📶 WiFi"

    first = await press(tg, "📶 WiFi")
    # The scheduler's health sweep may reach the new router before this message or after it.
    router_line = re.sub(r"🟢 gate: 0 online · seen \d\d:\d\d", "⚪ gate: not checked yet", first.content)
    assert router_line == (
        f"📶 {tenant.name} · today, {today()}\nSold: 0 vouchers · KES 0\n\nRouters\n"
        "⚪ gate: not checked yet · 0 vouchers in use\n\n"
        f"💳 Subscription paid until {until.astimezone(EAT):%d %b %Y}"
    )
    assert first.button_texts == WIFI_BUTTONS

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        code = await buy(client, tenant, rid, pid)
    sim.simulate_login(code, password=code, address="10.5.50.30", mac_address="AA:BB:CC:DD:EE:30")
    checked = await press(tg, "🔄 Check routers", has("📶"))
    seen = re.search(r"seen (\d\d:\d\d)", checked.content)
    assert seen is not None
    assert checked.content == (
        f"📶 {tenant.name} · today, {today()}\nSold: 1 voucher · KES 20\n• 1 hour: 1 · KES 20\n\nRouters\n"
        f"🟢 gate: 1 online · seen {seen.group(1)} · 1 voucher in use\n\n"
        f"💳 Subscription paid until {until.astimezone(EAT):%d %b %Y}"
    )

    # Printed cards: one router, so straight to its plans.
    plans = await press(tg, "🎟 Print vouchers")
    assert plans.content == "🎟 Which plan on gate?"
    assert plans.button_texts == ["1 hour · KES 20 · 1 hour", "✖ Cancel"]
    ask = await press(tg, "1 hour · KES 20 · 1 hour")
    assert ask.content == "How many cards? (1–500)"
    bad = await tg.ask("501", has("⚠️"), timeout=T)
    assert bad.content == "⚠️ Send a whole number of cards from 1 to 500.\nTry again, or /cancel."
    doc = await tg.ask("3", lambda m: m.document is not None, timeout=T)
    assert doc.content == (
        "🎟 3 × 1 hour (KES 20) for gate.\nOpen the file and print it on A4, then cut the cards. Each card "
        "works once the router has it, usually within seconds: 📶 WiFi shows any still waiting."
    )
    assert doc.button_texts == ["🧾 Same cards for a 58 mm printer", "⬅ Menu"]
    async with unit_of_work(readonly=True) as session:
        cards = list(
            await session.scalars(
                select(Voucher).where(Voucher.tenant_id == tenant.id, Voucher.batch_id.is_not(None))
            )
        )
    assert len(cards) == 3 and len({c.batch_id for c in cards}) == 1
    async with unit_of_work(readonly=True) as session:
        [row] = list(
            await session.scalars(
                select(AuditLog).where(AuditLog.tenant_id == tenant.id, AuditLog.action == "vouchers.batch")
            )
        )
    assert (row.target, row.detail["count"], row.detail["via"]) == (str(cards[0].batch_id), 3, "telegram")
    assert doc.document is not None
    assert doc.document["file_name"] == f"vouchers-{cards[0].batch_id.hex[:8]}-a4.html"  # type: ignore[union-attr]
    page = (await tg.file_bytes(doc.document["file_id"])).decode()
    assert "size:A4" in page and all(c.code in page for c in cards)
    roll = await press(tg, "🧾 Same cards for a 58 mm printer", lambda m: m.document is not None)
    assert roll.content == "🧾 The same 3 cards, one under another for a 58 mm thermal printer."
    assert roll.document is not None
    roll_page = (await tg.file_bytes(roll.document["file_id"])).decode()
    assert "58mm" in roll_page and all(c.code in roll_page for c in cards)

    async def on_router() -> bool:
        names = {str(u["name"]) for u in sim.users()}
        return all(c.code in names for c in cards)

    await wait_until(on_router)

    # Revoking: a wrong code is refused in place; the sold one is logged out and removed.
    wifi = await tg.ask("/wifi", has("Routers"), timeout=T)
    assert "Printed cards: 3" in wifi.content
    ask_code = await press(tg, "⛔ Revoke a voucher")
    assert ask_code.content == (
        "Send the code of the voucher to revoke (as printed or texted, e.g. K7MP3QXA)."
    )
    wrong = await tg.ask("NOPE2345", has("⚠️"), timeout=T)
    assert wrong.content == "⚠️ No voucher has that code. Check it and try again.\nTry again, or /cancel."
    shown = await tg.ask(code.lower(), has("Revoke it?"), timeout=T)
    assert shown.content.startswith(f"🎟 {code} · 1 hour · KES 20 · gate\nin use since ")
    assert shown.button_texts == ["⛔ Yes, revoke it", "✖ Cancel"]
    done = await press(tg, "⛔ Yes, revoke it")
    assert done.content == f"⛔ {code} is revoked: it is being taken off gate now."

    async def off() -> bool:
        # The user and its session are two router commands: wait for both, not the first of them.
        gone = code not in {str(u["name"]) for u in sim.users()}
        return gone and not [s for s in sim.active() if str(s["user"]) == code]

    await wait_until(off)
    async with unit_of_work(readonly=True) as session:
        v = await session.scalar(select(Voucher).where(Voucher.tenant_id == tenant.id, Voucher.code == code))
    assert v is not None and v.status is VoucherStatus.revoked
    again = await tg.ask("/wifi", has("Routers"), timeout=T)
    await press(tg, "⛔ Revoke a voucher")
    gone = await tg.ask(code, has("Nothing to revoke"), timeout=T)
    assert gone.content == f"🎟 {code} · 1 hour · KES 20 · gate\nrevoked\nNothing to revoke."
    assert again.button_texts == WIFI_BUTTONS


async def test_subscription_order_opens_pesapal(
    server: LiveServer, tg: TelegramSimClient, sim: RouterSim
) -> None:
    tenant, *_ = await provider_chat(tg, sim)
    async with unit_of_work() as session:
        plan = SubscriptionPlan(name=f"Monthly {tenant.slug}", period=SubscriptionPeriod.monthly, price=1500)
        session.add(plan)
    await tg.ask("/wifi", has("Routers"), timeout=T)
    offer = await press(tg, "💳 Subscription")
    assert offer.content.startswith("💳 Subscription paid until ")
    assert offer.content.endswith("Pick a plan to pay through Pesapal (M-Pesa, Airtel Money or card):")
    label = f"Monthly {tenant.slug} · KES 1,500"
    assert label in offer.button_texts
    order = await press(tg, label, has("Order"))
    assert re.fullmatch(
        r"💳 Order \S+: KES 1,500\. Pay on Pesapal's page; your subscription is extended as soon as "
        r"Pesapal confirms the payment\.",
        order.content,
    )
    pay = order.button("Pay KES 1,500 on Pesapal")
    assert pay is not None and pay["url"].startswith("http")
    # The same audit row as the panel's (the bot wrote none before the use case).
    async with unit_of_work(readonly=True) as session:
        [row] = list(
            await session.scalars(
                select(AuditLog).where(
                    AuditLog.tenant_id == tenant.id, AuditLog.action == "subscription.order_started"
                )
            )
        )
    assert row.detail["via"] == "telegram" and row.detail["amount"] == 1500


async def test_wifi_is_for_providers_staff_only(
    server: LiveServer, tg: TelegramSimClient, sim: RouterSim
) -> None:
    await provider_chat(tg, sim, role=Role.cashier)
    menu = await tg.ask("/start", has("What would you like to do?"), timeout=T)
    assert "📶 WiFi" not in menu.button_texts
    refused = await tg.ask("/wifi", has("⚠️"), timeout=T)
    assert refused.content.startswith("⚠️ This is for the owner or manager of Kangemi WiFi")

    shop_user = await tg.create_user("Baraka", user_id=random.randint(800_000_000, 899_999_999))
    shop, owner = await make_tenant(name="Duka la Baraka")
    async with unit_of_work() as session:
        code, _ = await issue_code(
            session, purpose=CodePurpose.telegram_link, tenant_id=shop.id, user_id=owner.id
        )
    await tg.send_text(f"/start {code}", user_id=shop_user.id)
    await tg.wait_for_bot_message(shop_user.id, has("What would you like to do?"), T)
    await tg.send_text("/wifi", user_id=shop_user.id)
    no = await tg.wait_for_bot_message(shop_user.id, has("⚠️"), T)
    assert no.content == (
        "⚠️ 📶 WiFi is for hotspot providers. This business collects M-Pesa payments only.\n"
        "Try again, or /cancel."
    )
