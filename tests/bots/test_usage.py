"""📈 /usage in the bot, and the issue's acceptance check: after a test makes exactly 7 requests of known
answers with one key (2 accepted pushes, a refused push, 3 lists, a 404), the bot, the panel and the
API all show 7 requests, 2 pushes and 2 failures for its app, in the last 24 hours and this month."""

from __future__ import annotations

import httpx

from core.db import utcnow
from core.tenants.models import Environment
from core.usage.service import NAIROBI, month_start
from sim.telegram.client import TelegramSimClient
from tests.bots.test_home_wallet_settings import T, has, linked_owner
from tests.bots.test_plan import month_sentence
from tests.bots.test_transactions import join_as_cashier
from tests.conftest import LiveServer
from tests.support.factories import make_api_key
from tests.support.panel import business_client, rows_of, text_of
from tests.web.test_usage_api import flush, key_row, known_requests, login

PANEL_NOTE = "Per key and per endpoint, and the request log: web panel, Settings → Usage."
# a test-mode business: its pushes never count against the Free plan's quota
PLAN = "📦 Free plan. {} /plan"


def month_title() -> str:
    return f"{month_start(utcnow()).astimezone(NAIROBI):%B %Y} so far"


async def test_the_bot_the_panel_and_the_api_agree_with_the_requests_made(
    server: LiveServer, tg: TelegramSimClient, client: httpx.AsyncClient
) -> None:
    tenant, owner = await linked_owner(tg, name="Bot Usage", environment=Environment.simulator)
    empty = await tg.ask("/usage", has("API usage of"), timeout=T)
    nothing = "0 requests, 0 pushes, 0 failures"
    assert empty.content == (
        f"📈 API usage of Bot Usage\nLast 24 hours: {nothing}\n{month_title()}: {nothing}\n\n"
        f"{PLAN.format(month_sentence(0, 100))}\n\n{PANEL_NOTE}"
    )

    key = await make_api_key(tenant=tenant)
    row = await key_row(tenant, key[:12])
    await known_requests(client, key)
    await flush(server)
    seven = "7 requests, 2 pushes, 2 failures"

    # the bot
    told = await tg.ask("/usage", has("API usage of"), timeout=T)
    assert told.content == (
        f"📈 API usage of Bot Usage\nLast 24 hours: {seven}\n• Default app (test): {seven}\n"
        f"{month_title()}: {seven}\n• Default app (test): {seven}\n\n"
        f"{PLAN.format(month_sentence(0, 100))}\n\n{PANEL_NOTE}"
    )

    # the panel
    panel = await business_client(server.url, owner)
    try:
        page = await panel.get("/app/settings/usage")
        assert rows_of(page.text, "totals") == [["7", "2", "5", "2"], ["7", "2", "5", "2"]]
        assert text_of(page.text, "per-app").endswith("Default app test 7 2 2 7 2 2")
        assert len(rows_of(page.text, "requests")) == 7
    finally:
        await panel.aclose()

    # the API (this read is a login token's request: counted once it has answered, never in the app)
    r = await client.get("/api/usage", headers=await login(client, owner.email))
    assert r.status_code == 200, r.text
    for period in ("last_24h", "this_month"):
        figures = r.json()[period]
        totals = figures["totals"]
        assert (totals["requests"], totals["pushes"], totals["failures"]) == (7, 2, 2)
        [app] = figures["apps"]
        assert (app["app_id"], app["requests"], app["pushes"], app["failures"]) == (str(row.app_id), 7, 2, 2)
        [k] = figures["keys"]
        assert (k["key_id"], k["requests"], k["pushes"], k["failures"]) == (str(row.id), 7, 2, 2)


async def test_a_manager_may_a_cashier_may_not(server: LiveServer, tg: TelegramSimClient) -> None:
    tenant, owner = await linked_owner(tg, name="Cashier Usage", environment=Environment.simulator)
    await join_as_cashier(tg, tenant, owner.id)
    refused = await tg.ask("/usage", has("⚠️"), timeout=T)
    assert refused.content == "⚠️ This is for the owner or manager of Cashier Usage.\nTry again, or /cancel."
