"""A business with two tills, over HTTP: GET /api/customers, /api/transactions, /api/dashboard and their
Excel exports take `channel_id` and answer exactly that channel's rows and figures (the customer book
staying one book: the figures are the whole book's); another business's channel is 404 and a malformed
id 422. The business panel offers the same filter when there is more than one channel, and the admin's
all-transactions export names each payment's mode and channel."""

from __future__ import annotations

import asyncio
import html
import io
import re
import uuid
from contextlib import aclosing
from typing import Any

import httpx
from openpyxl import load_workbook

from core.auth.models import Role, User
from core.exports.global_exports import PLATFORM_CHANNEL
from core.runtime import unit_of_work
from core.tenants.channels import NO_SUCH_CHANNEL
from tests.conftest import LiveServer
from tests.support.channels import AKINYI, KAMAU, OTIENO, SECOND, WANJIKU, TwoTills, two_tills
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.panel import admin_client, business_client, csrf_of, rows_of, text_of
from tests.support.waiting import wait_for_final


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str) -> str:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def sheet(content: bytes) -> list[tuple[Any, ...]]:
    ws = load_workbook(io.BytesIO(content), read_only=True).active
    assert ws is not None
    return list(ws.iter_rows(values_only=True))


async def customers(
    client: httpx.AsyncClient, token: str, **params: str
) -> tuple[int, list[tuple[Any, ...]]]:
    r = await client.get("/api/customers", params=params, headers=auth(token))
    assert r.status_code == 200, r.text
    rows = [
        (c["phone"], c["requested_count"], c["requested_total"], c["paid_count"], c["paid_total"])
        for c in r.json()["items"]
    ]
    return r.json()["total"], sorted(rows)


class TestApi:
    async def test_customers_by_channel(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        b = await two_tills()
        token = await login(client, b.owner_email)
        wanjiku = (WANJIKU, 2, 150, 2, 150)  # 100 at Main, 50 at the till: one book, whole figures
        assert await customers(client, token) == (
            4,
            sorted([wanjiku, (OTIENO, 2, 50, 1, 30), (KAMAU, 1, 40, 1, 40), (AKINYI, 1, 70, 0, 0)]),
        )
        assert await customers(client, token, channel_id=str(b.main)) == (
            3,
            sorted([wanjiku, (OTIENO, 2, 50, 1, 30), (KAMAU, 1, 40, 1, 40)]),
        )
        assert await customers(client, token, channel_id=str(b.till)) == (
            2,
            sorted([wanjiku, (AKINYI, 1, 70, 0, 0)]),
        )
        # An API key reads the same book the same way.
        key = await make_api_key(tenant=b.tenant)
        assert (await customers(client, key, channel_id=str(b.till)))[0] == 2

        r = await client.get(
            "/api/customers/export-excel", params={"channel_id": str(b.till)}, headers=auth(token)
        )
        assert r.status_code == 200, r.text
        rows = sheet(r.content)
        assert rows[0][:2] == ("Name", "Phone")
        assert sorted(row[:5] for row in rows[1:]) == [
            ("Akinyi", AKINYI, 1, 0, 0),
            ("Wanjiku", WANJIKU, 2, 2, 150),
        ]

    async def test_transactions_by_channel(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        b = await two_tills()
        token = await login(client, b.owner_email)
        for channel_id, expected in ((b.main, b.main_payments), (b.till, b.till_payments)):
            r = await client.get(
                "/api/transactions", params={"channel_id": str(channel_id)}, headers=auth(token)
            )
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            assert {uuid.UUID(p["id"]) for p in items} == expected
            assert {p["channel_id"] for p in items} == {str(channel_id)}
        r = await client.get("/api/transactions", headers=auth(token))
        assert {uuid.UUID(p["id"]) for p in r.json()["items"]} == b.main_payments | b.till_payments
        # The channel filter combines with the others.
        r = await client.get(
            "/api/transactions", params={"channel_id": str(b.till), "status": "success"}, headers=auth(token)
        )
        assert [(p["phone"], p["amount"]) for p in r.json()["items"]] == [(WANJIKU, 50)]

        r = await client.get(
            "/api/transactions/export-excel", params={"channel_id": str(b.till)}, headers=auth(token)
        )
        assert r.status_code == 200, r.text
        rows = sheet(r.content)
        assert rows[0][:5] == ("Date (EAT)", "Phone", "Customer", "Amount (KES)", "Status")
        # (phone, amount, status, source): the till's KES 1 channel test is a payment of the till too
        assert sorted((row[1], row[3], row[4], row[7]) for row in rows[1:]) == [
            (WANJIKU, 50, "success", "api"),
            (AKINYI, 70, "pending", "api"),
            (KAMAU, 1, "pending", "onboarding"),
        ]

    async def test_dashboard_by_channel(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        b = await two_tills()
        token = await login(client, b.owner_email)

        async def figures(**params: str) -> tuple[Any, ...]:
            r = await client.get("/api/dashboard", params=params, headers=auth(token))
            assert r.status_code == 200, r.text
            d = r.json()
            return (
                d["total_processed"],
                d["transactions"],
                d["success_count"],
                d["failed_count"],
                d["pending_count"],
                sorted(c["phone"] for c in d["recent_customers"]),
                d["commission_deducted_cents"],
            )

        whole = await figures()
        # Commission at the default 1 % on all 220 paid, through either till: one wallet, whole figure.
        assert whole == (220, 6, 4, 1, 1, sorted([WANJIKU, OTIENO, KAMAU, AKINYI]), 220)
        assert await figures(channel_id=str(b.main)) == (
            170,
            4,
            3,
            1,
            0,
            sorted([WANJIKU, OTIENO, KAMAU]),
            220,
        )
        assert await figures(channel_id=str(b.till)) == (50, 2, 1, 0, 1, sorted([WANJIKU, AKINYI]), 220)

    async def test_another_business_channel_is_404_and_a_malformed_one_422(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        b = await two_tills()
        other = await two_tills(name="Other Tills Duka")
        token = await login(client, b.owner_email)
        paths = (
            "/api/customers",
            "/api/customers/export-excel",
            "/api/transactions",
            "/api/transactions/export-excel",
            "/api/dashboard",
        )
        for path in paths:
            for foreign in (other.main, other.till, uuid.uuid4()):
                r = await client.get(path, params={"channel_id": str(foreign)}, headers=auth(token))
                assert r.status_code == 404, (path, r.text)
                assert r.json() == {"error": "not_found", "detail": NO_SUCH_CHANNEL}
            r = await client.get(path, params={"channel_id": "till-2"}, headers=auth(token))
            assert r.status_code == 422, (path, r.text)
            body = r.json()
            assert body["error"] == "invalid_input" and list(body["errors"]) == ["channel_id"], body
            assert body["errors"]["channel_id"].startswith("Input should be a valid UUID"), body


class TestPanel:
    async def test_the_pages_offer_the_channels_and_filter_by_one(self, server: LiveServer) -> None:
        b = await two_tills()
        owner = await business_client(server.url, await _user(b))
        async with aclosing(owner):
            page = await owner.get("/app/customers")
            assert page.status_code == 200
            assert _options(page.text) == [("", "All channels"), (str(b.main), "Main"), (str(b.till), SECOND)]

            page = await owner.get("/app/customers", params={"channel": str(b.till)})
            assert page.status_code == 200
            assert text_of(page.text, "customer-count") == "2 customers"
            assert sorted(r[1] for r in rows_of(page.text, "customers")) == ["0722 000 111", "0722 000 333"]
            assert f'<option value="{b.till}" selected>' in page.text
            export = re.search(r'id="export" href="([^"]+)"', page.text)
            assert export is not None and f"channel={b.till}" in export.group(1)
            r = await owner.get(export.group(1).replace("&amp;", "&"))
            assert r.status_code == 200
            assert sorted(row[1] for row in sheet(r.content)[1:]) == [WANJIKU, AKINYI]

            page = await owner.get("/app/transactions", params={"channel": str(b.main)})
            assert page.status_code == 200
            rows = rows_of(page.text, "transactions")
            assert sorted((r[1], r[3], r[4], r[7]) for r in rows) == [
                ("0722 000 111", "KES 100", "success", "Main"),
                ("0722 000 222", "KES 20", "cancelled", "Main"),
                ("0722 000 222", "KES 30", "success", "Main"),
                ("0722 000 444", "KES 40", "success", "Main"),
            ]
            export = re.search(r'id="export" href="([^"]+)"', page.text)
            assert export is not None and f"channel={b.main}" in export.group(1)
            r = await owner.get(export.group(1).replace("&amp;", "&"))
            assert r.status_code == 200
            assert sorted(row[3] for row in sheet(r.content)[1:]) == [20, 30, 40, 100]

            page = await owner.get("/app", params={"channel": str(b.till)})
            assert page.status_code == 200
            assert text_of(page.text, "stat-total") == "KES 50"
            assert text_of(page.text, "stat-transactions") == "2"
            assert text_of(page.text, "stat-ratio").startswith("1 / 0")
            assert sorted(r[1] for r in rows_of(page.text, "recent-customers")) == [
                "0722 000 111",
                "0722 000 333",
            ]
            assert f'href="/app/customers?channel={b.till}"' in page.text
            page = await owner.get("/app")
            assert text_of(page.text, "stat-total") == "KES 220"
            assert 'id="f-channel"' in page.text

    async def test_bad_and_foreign_channels(self, server: LiveServer) -> None:
        b = await two_tills()
        other = await two_tills(name="Other Panel Duka")
        owner = await business_client(server.url, await _user(b))
        async with aclosing(owner):
            for path in ("/app/customers", "/app/transactions", "/app"):
                page = await owner.get(path, params={"channel": "main"})
                assert page.status_code == 422, path
                assert '<p class="error" id="channel-error">Choose a channel from the list.</p>' in page.text
                page = await owner.get(path, params={"channel": str(other.till)})
                assert page.status_code == 404, path
                assert NO_SUCH_CHANNEL in html.unescape(page.text)
            for path in ("/app/customers/export.xlsx", "/app/transactions/export.xlsx"):
                assert (await owner.get(path, params={"channel": str(other.main)})).status_code == 404
                assert (await owner.get(path, params={"channel": "x"})).status_code == 422

    async def test_one_channel_no_select_and_a_cashier_has_no_export(self, server: LiveServer) -> None:
        _, owner_user = await make_tenant(name="One Till Duka")
        owner = await business_client(server.url, owner_user)
        async with aclosing(owner):
            for path in ("/app", "/app/customers", "/app/transactions"):
                page = await owner.get(path)
                assert page.status_code == 200 and 'id="f-channel"' not in page.text, path
        b = await two_tills()
        cashier = await business_client(server.url, await make_user(tenant=b.tenant, role=Role.cashier))
        async with aclosing(cashier):
            page = await cashier.get("/app/transactions", params={"channel": str(b.till)})
            assert page.status_code == 200
            assert 'id="f-channel"' in page.text and 'id="export"' not in page.text
            assert 'id="no-transactions"' in page.text  # none of the owner's data is the cashier's
            r = await cashier.get("/app/transactions/export.xlsx")
            assert r.status_code == 403


async def _user(b: TwoTills) -> User:
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, b.owner_id)
        assert user is not None
        return user


def _options(page: str) -> list[tuple[str, str]]:
    select = re.search(r'<select id="f-channel" name="channel"[^>]*>(.*?)</select>', page, re.S)
    assert select is not None
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))


async def test_the_admin_export_names_mode_and_channel(server: LiveServer, client: httpx.AsyncClient) -> None:
    b = await two_tills(name="Global Tills Duka")
    # A wallet top-up: the business's payment, through the platform's own channel.
    key = await make_api_key(tenant=b.tenant)
    r = await client.post("/api/wallet/topup", json={"amount": 200, "phone": "0722009998"}, headers=auth(key))
    assert r.status_code == 201, r.text
    assert (await wait_for_final(client, key, r.json()["id"]))["status"] == "success"
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        page = await admin.get("/admin/exports")
        r = await admin.post(
            "/admin/exports", data={"kind": "transactions", "status": "", "csrf_token": csrf_of(page.text)}
        )
        assert r.status_code == 303, r.text
        export_id = re.search(r"started=([0-9a-f-]+)", r.headers["location"]).group(1)  # type: ignore[union-attr]
        for _ in range(300):
            fragment = await admin.get(f"/admin/exports/{export_id}/progress")
            if "data-poll" not in fragment.text:
                break
            await asyncio.sleep(0.1)
        file = await admin.get(f"/admin/exports/{export_id}/download")
        assert file.status_code == 200, file.text
        rows = sheet(file.content)
    assert rows[0][:6] == ("Business", "Business number", "Date (EAT)", "Phone", "Customer", "Amount (KES)")
    assert rows[0][12:] == ("Commission (KES)", "Mode", "Channel")
    number = b.tenant.business_number
    mine = sorted((r[3], r[5], r[6], r[13], r[14]) for r in rows[1:] if r[1] == number)
    assert mine == sorted(
        [
            (WANJIKU, 100, "success", "live", "Main"),
            (OTIENO, 30, "success", "live", "Main"),
            (OTIENO, 20, "cancelled", "live", "Main"),
            (KAMAU, 40, "success", "live", "Main"),
            (WANJIKU, 50, "success", "live", SECOND),
            (AKINYI, 70, "pending", "live", SECOND),
            (KAMAU, 1, "pending", "live", SECOND),
            ("254722009998", 200, "success", "live", PLATFORM_CHANNEL),
        ]
    )
    # The commission column is still shillings: 1 % of 100.
    [first] = [r for r in rows[1:] if r[1] == number and r[5] == 100]
    assert float(first[12]) == 1.0
