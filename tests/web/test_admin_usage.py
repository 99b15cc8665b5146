"""Platform admin → Usage and `lipapush usage`: API usage across businesses this month counts exactly the
requests a business made with its key (as its own GET /api/usage does), its refused-key attempts, and its
live pushes against its plan's quota; a business user is refused the page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from core.db import utcnow
from core.plans.models import PlanUsage
from core.plans.service import month_of
from core.runtime import unit_of_work
from core.tenants.models import Environment
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.panel import admin_client, business_client, text_of
from tests.support.services import TestDatabase
from tests.web.test_cli_support import clean_env, lipapush
from tests.web.test_usage_api import bearer, flush, known_requests


async def test_the_admin_sees_each_business_s_requests_refusals_and_quota(
    server: LiveServer, client: httpx.AsyncClient, database: TestDatabase, tmp_path: Path
) -> None:
    tenant, _ = await make_tenant(name="Usage Across Duka", environment=Environment.simulator)
    quiet, _ = await make_tenant(name="Quiet Across Duka", environment=Environment.simulator)
    key = await make_api_key(tenant=tenant)
    await known_requests(client, key)  # 7 requests: 2 pushes, 2 failures
    wrong = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")  # its prefix names the key
    for _ in range(2):
        assert (await client.get("/api/transactions", headers=bearer(wrong))).status_code == 401
    await flush(server)
    async with unit_of_work() as session:  # 85 live pushes counted this month (test pushes never are)
        session.add(PlanUsage(tenant_id=tenant.id, month=month_of(utcnow()), live_pushes=85))

    admin, _ = await admin_client(server.url)
    try:
        page = await admin.get("/admin/usage", params={"q": "across duka"})
        assert page.status_code == 200, page.text
        assert '<a href="/admin/usage" aria-current="page">Usage</a>' in page.text
        # the quiet business made no request and pushed nothing live: not listed
        assert text_of(page.text, f"usage-{tenant.slug}") == "Usage Across Duka Free 9 2 9 2 4 85 / 100 85%"
        assert f'<a href="/admin/tenants/{tenant.id}">Usage Across Duka</a>' in page.text
        assert f"usage-{quiet.slug}" not in page.text

        nobody = await admin.get("/admin/usage", params={"q": "no such business at all"})
        assert "No business matching “no such business at all”" in text_of(nobody.text, "no-usage")
    finally:
        await admin.aclose()

    env = clean_env(tmp_path / "home", **database.env(), COLUMNS="250")
    run = await asyncio.to_thread(lipapush, "usage", "--search", tenant.slug, env=env, cwd=tmp_path)
    assert run.returncode == 0, run
    [line] = [line for line in run.stdout.splitlines() if tenant.slug in line]
    assert [cell.strip() for cell in line.split("│")[2:9]] == ["Free", "9", "2", "9", "2", "4", "85 / 100"]
    refused = await asyncio.to_thread(lipapush, "usage", "--limit", "0", env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "Show 1 to 500 businesses." in refused.stderr


async def test_a_business_user_is_refused(server: LiveServer) -> None:
    _, owner = await make_tenant(name="Not An Admin Duka", environment=Environment.simulator)
    panel = await business_client(server.url, owner)
    try:
        r = await panel.get("/admin/usage")
        assert r.status_code == 403
    finally:
        await panel.aclose()
