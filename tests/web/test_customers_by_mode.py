"""One customer book per mode. A business tries lipapush on the simulator (test key, test book), then
goes live: its live book starts empty and counts live payments only, even for a phone it already
knows from the test phase; a test key still reads the test book, never a live customer, and a live
key never a test one. A person reads the business's current mode's book, wherever they read it (the
list, the dashboard, the export, the payee suggestions and names)."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from openpyxl import load_workbook

from core.access.actor import Actor, Via
from core.access.permissions import ApiScope
from core.auth.models import Role
from core.customers.service import customers
from core.payments.use_cases import payee_name, payee_suggestions
from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment, Mode
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import _channel_for, make_api_key, make_tenant
from tests.support.waiting import wait_for_final

WANJIKU = "254722000111"
OTIENO = "254722000222"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def push(client: httpx.AsyncClient, key: str, phone: str, amount: int, name: str) -> None:
    r = await client.post(
        "/api/stk-push", json={"phone": phone, "amount": amount, "name": name}, headers=auth(key)
    )
    assert r.status_code == 201, r.text
    assert (await wait_for_final(client, key, r.json()["id"]))["status"] == "success"


async def book(client: httpx.AsyncClient, token: str) -> tuple[str, int, list[tuple[Any, ...]]]:
    r = await client.get("/api/customers", headers=auth(token))
    assert r.status_code == 200, r.text
    page = r.json()
    rows = [
        (c["phone"], c["name"], c["requested_count"], c["requested_total"], c["paid_count"], c["paid_total"])
        for c in page["items"]
    ]
    return page["mode"], page["total"], rows


async def exported(client: httpx.AsyncClient, token: str) -> list[tuple[Any, ...]]:
    r = await client.get("/api/customers/export-excel", headers=auth(token))
    assert r.status_code == 200, r.text
    ws = load_workbook(io.BytesIO(r.content), read_only=True).active
    assert ws is not None
    return [row[:5] for row in list(ws.iter_rows(values_only=True))[1:]]


async def recent_on_dashboard(client: httpx.AsyncClient, token: str) -> list[tuple[str, str | None]]:
    r = await client.get("/api/dashboard", headers=auth(token))
    assert r.status_code == 200, r.text
    return [(c["phone"], c["name"]) for c in r.json()["recent_customers"]]


async def go_live(tenant_id: uuid.UUID, owner_id: uuid.UUID) -> None:
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant_id)
        channel = await tenants.save_channel(
            session,
            tenant=row,
            data=_channel_for(Environment.production, ChannelKind.paybill),
            box=runtime().secrets,
            by=owner_id,
        )
        await tenants.mark_verified(session, channel=channel)


async def login(client: httpx.AsyncClient, email: str) -> str:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def test_a_business_gone_live_keeps_two_books(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, owner = await make_tenant(name="Two Books Duka", environment=Environment.simulator)
    test_key = await make_api_key(tenant=tenant)
    assert test_key.startswith("lp_test_")
    await push(client, test_key, "0722000111", 100, "Wanjiku")
    await push(client, test_key, "0722000111", 50, "Wanjiku")
    await push(client, test_key, "0722000222", 30, "Otieno")
    person = Actor.for_user(user_id=owner.id, tenant_id=tenant.id, role=Role.owner, via=Via.telegram)

    test_book = [(WANJIKU, "Wanjiku", 2, 150, 2, 150), (OTIENO, "Otieno", 1, 30, 1, 30)]
    assert sorted((await book(client, test_key))[2]) == test_book
    owner_token = await login(client, owner.email)
    # Before going live, the person's book is the test book.
    mode, total, rows = await book(client, owner_token)
    assert (mode, total, sorted(rows)) == ("test", 2, test_book)

    await go_live(tenant.id, owner.id)
    live_key = await make_api_key(tenant=tenant)
    assert live_key.startswith("lp_live_")

    # Live now, and nothing paid live yet: an empty live book for the live key and for the owner,
    # everywhere they read it.
    assert await book(client, live_key) == ("live", 0, [])
    assert await book(client, owner_token) == ("live", 0, [])
    assert await exported(client, owner_token) == []
    assert await exported(client, live_key) == []
    assert await recent_on_dashboard(client, owner_token) == []
    assert await payee_suggestions(person) == []
    assert await payee_name(person, WANJIKU) is None
    # The test key still reads its own book, unchanged.
    mode, total, rows = await book(client, test_key)
    assert (mode, total, sorted(rows)) == ("test", 2, test_book)

    # A live payment from a phone the test phase knew starts its own live row.
    await push(client, live_key, "0722000111", 70, "Wanjiku K")
    live_book = [(WANJIKU, "Wanjiku K", 1, 70, 1, 70)]
    assert await book(client, live_key) == ("live", 1, live_book)
    assert await book(client, owner_token) == ("live", 1, live_book)
    assert await exported(client, owner_token) == [("Wanjiku K", WANJIKU, 1, 1, 70)]
    assert await recent_on_dashboard(client, owner_token) == [(WANJIKU, "Wanjiku K")]
    assert [(s.phone, s.name) for s in await payee_suggestions(person)] == [(WANJIKU, "Wanjiku K")]
    assert await payee_name(person, WANJIKU) == "Wanjiku K"
    assert await payee_name(person, OTIENO) is None  # a test-phase customer only

    # The test key never sees the live row, nor the live key a test one.
    mode, total, rows = await book(client, test_key)
    assert (mode, total, sorted(rows)) == ("test", 2, test_book)
    assert sorted(await exported(client, test_key)) == [
        ("Otieno", OTIENO, 1, 1, 30),
        ("Wanjiku", WANJIKU, 2, 2, 150),
    ]
    assert sorted(await recent_on_dashboard(client, test_key)) == [(WANJIKU, "Wanjiku"), (OTIENO, "Otieno")]
    assert sorted(await recent_on_dashboard(client, live_key)) == [(WANJIKU, "Wanjiku K")]
    for mode, known, suggested in (
        (Mode.test, "Wanjiku", [(OTIENO, "Otieno"), (WANJIKU, "Wanjiku")]),
        (Mode.live, "Wanjiku K", [(WANJIKU, "Wanjiku K")]),
    ):
        key = Actor.for_api_key(
            api_key_id=uuid.uuid4(), tenant_id=tenant.id, scopes=list(ApiScope), mode=mode
        )
        assert await payee_name(key, WANJIKU) == known
        assert [(s.phone, s.name) for s in await payee_suggestions(key)] == suggested

    # One row per mode in the table itself.
    async with unit_of_work(readonly=True) as session:
        test_row = await customers.get(session, tenant_id=tenant.id, mode=Mode.test, phone=WANJIKU)
        live_row = await customers.get(session, tenant_id=tenant.id, mode=Mode.live, phone=WANJIKU)
        assert test_row is not None and (test_row.paid_total, test_row.name) == (150, "Wanjiku")
        assert live_row is not None and (live_row.paid_total, live_row.name) == (70, "Wanjiku K")
