"""The admin overview: today's figures and what needs attention move with what happens."""

from __future__ import annotations

import re
from contextlib import aclosing

import httpx

from core.notify.models import Notification, NotifyChannel, NotifyStatus
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.panel import admin_client
from tests.support.waiting import wait_for_final


def figure(html: str, id_: str) -> str:
    match = re.search(rf'id="{id_}">([^<]*)<', html)
    assert match, id_
    return match.group(1)


def kes(text: str) -> int:
    return int(text.removeprefix("KES ").replace(",", ""))


async def test_overview_moves_with_payments_and_failures(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        before = (await admin.get("/admin")).text
        tenant, _ = await make_tenant(name="Overview Duka")
        key = await make_api_key(tenant=tenant)
        for phone, amount in (("0722000111", 400), ("0722002001", 50)):  # paid; wrong PIN
            r = await client.post(
                "/api/stk-push",
                json={"phone": phone, "amount": amount},
                headers={"Authorization": f"Bearer {key}"},
            )
            await wait_for_final(client, key, r.json()["id"])
        async with unit_of_work() as session:
            session.add(
                Notification(
                    tenant_id=tenant.id,
                    kind="payment_receipt",
                    channel=NotifyChannel.sms,
                    recipient="254722000111",
                    body="x",
                    status=NotifyStatus.failed,
                )
            )
        page = await admin.get("/admin")
        assert page.status_code == 200
        after = page.text
        assert int(figure(after, "today-payments")) - int(figure(before, "today-payments")) == 2
        assert kes(figure(after, "today-collected")) - kes(figure(before, "today-collected")) == 400
        assert int(figure(after, "undelivered")) - int(figure(before, "undelivered")) == 1
        assert int(figure(after, "tenants-active")) - int(figure(before, "tenants-active")) == 1
