"""🧩 Apps in the bot: the owner lists apps with /apps and creates one by name (same use case as the
API); a bad or taken name is asked again; a cashier is refused in core's words."""

from __future__ import annotations

from sqlalchemy import select

from core.apps.models import App
from core.runtime import unit_of_work
from core.tenants.models import Environment, Tenant
from sim.telegram.client import TelegramSimClient
from tests.bots.test_home_wallet_settings import T, has, linked_owner, press
from tests.bots.test_transactions import join_as_cashier
from tests.conftest import LiveServer
from tests.support.factories import make_api_key


async def app_names(tenant: Tenant) -> list[str]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(App.name)
            .where(App.tenant_id == tenant.id, App.archived_at.is_(None))
            .order_by(App.created_at)
        )
        return list(rows)


async def test_owner_lists_and_creates_an_app(server: LiveServer, tg: TelegramSimClient) -> None:
    tenant, _ = await linked_owner(tg, name="Bot Apps", environment=Environment.simulator)
    empty = await tg.ask("/apps", has("Apps of"), timeout=T)
    assert empty.content == (
        "🧩 Apps of Bot Apps\nNo apps yet. Your first API key makes a “Default app”, or create one here.\n\n"
        "API keys, callback hosts and archiving are in the web panel: Settings → Apps."
    )
    assert empty.button_texts == ["➕ Create app", "⬅ Menu"]
    await make_api_key(tenant=tenant)  # makes the Default app

    ask = await press(tg, "➕ Create app")
    assert (
        ask.content == "🧩 What is the new app called? Send a name of up to 80 characters, like Shop website."
    )
    assert ask.button_texts == ["✖ Cancel"]
    taken = await tg.ask("default app", has("⚠️"), timeout=T)
    assert taken.content == (
        "⚠️ This business already has an app named “default app”: choose another name, or rename that app.\n"
        "Try again, or /cancel."
    )
    made = await tg.ask("Shop website", has("✅"), timeout=T)
    assert made.content.startswith("✅ App created.\n• Shop website · test · Main: Paybill ")
    assert made.content.endswith(
        "(simulator) · 0 keys\nMake its API keys in the web panel: Settings → API keys."
    )
    assert await app_names(tenant) == ["Default app", "Shop website"]
    listed = await tg.ask("/apps", has("Apps of"), timeout=T)
    assert [line.split(" · ")[0] for line in listed.content.splitlines()[1:3]] == [
        "• Default app",
        "• Shop website",
    ]
    assert listed.content.splitlines()[1].endswith(" · 1 key")


async def test_a_cashier_is_refused(server: LiveServer, tg: TelegramSimClient) -> None:
    tenant, owner = await linked_owner(tg, name="Cashier Apps")
    await join_as_cashier(tg, tenant, owner.id)
    refused = await tg.ask("/apps", has("⚠️"), timeout=T)
    assert refused.content == "⚠️ This is for the owner of Cashier Apps.\nTry again, or /cancel."
    assert await app_names(tenant) == []
