"""Platform admin → Transactions over HTTP: every filter gives exact rows, keyset pages neither repeat nor
skip, broken cursors and bad filters are 422 with the message by the field, non-admins are refused, and
a payment's page shows its callbacks (escaped) and ledger transfers."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

import httpx
from sqlalchemy import func, select

from core.auth.models import Role
from core.db import utcnow
from core.jobs.models import JobOutbox
from core.ledger.models import Transfer
from core.payments.models import CallbackInbox, Payment, PaymentSource, PaymentStatus
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.panel import admin_client, business_client
from tests.support.waiting import wait_for_final, wait_until

EAT_OFFSET = timedelta(hours=3)


@asynccontextmanager
async def admin(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    client, _ = await admin_client(server.url)
    async with closing(client):
        yield client


@asynccontextmanager
async def closing(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    try:
        yield client
    finally:
        await client.aclose()


def a_day() -> date:
    """A day in the past no other test writes to, so all-tenant queries see only this test's rows."""
    return date(1995, 1, 1) + timedelta(days=random.randrange(20 * 365))


def eat(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """That wall-clock time in Nairobi, as UTC."""
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC) - EAT_OFFSET


async def add_payment(
    tenant: Tenant,
    at: datetime,
    *,
    status: PaymentStatus = PaymentStatus.success,
    source: PaymentSource = PaymentSource.api,
    phone: str = "254712345678",
    amount: int = 100,
    pid: uuid.UUID | None = None,
) -> uuid.UUID:
    async with unit_of_work() as session:
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        p = Payment(
            id=pid or uuid.uuid4(),
            tenant_id=tenant.id,
            channel_id=channel.id,
            source=source,
            status=status,
            amount=amount,
            phone=phone,
            account_reference="TEST",
            description="Payment",
            created_at=at,
            receipt=f"T{uuid.uuid4().hex[:9].upper()}" if status is PaymentStatus.success else None,
            result_code="0" if status is PaymentStatus.success else "1032",
        )
        session.add(p)
        await session.flush()
        return p.id


def row_ids(html: str) -> list[uuid.UUID]:
    return [uuid.UUID(x) for x in re.findall(r'<tr data-id="([0-9a-f-]{36})">', html)]


def link(html: str, rel: str) -> str | None:
    m = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    return m.group(1).replace("&amp;", "&") if m else None


class TestFilters:
    async def test_each_filter_gives_exact_rows(self, server: LiveServer) -> None:
        a, _ = await make_tenant(name="Kibanda A")
        b, _ = await make_tenant(name="Kibanda B")
        d = a_day()
        nxt = d + timedelta(days=1)
        a1 = await add_payment(a, eat(d, 10), phone="254712345678")
        a2 = await add_payment(
            a, eat(d, 11), status=PaymentStatus.failed, source=PaymentSource.ussd, phone="254722000111"
        )
        b1 = await add_payment(
            b, eat(d, 12), source=PaymentSource.telegram, phone="254712999678", amount=1250
        )
        # Midnight in Nairobi opens the next day; one second before it is still the day before.
        b2 = await add_payment(
            b, eat(nxt, 0), status=PaymentStatus.cancelled, source=PaymentSource.portal, phone="254110000678"
        )
        b3 = await add_payment(b, eat(d, 0) - timedelta(seconds=1), phone="254712345678")
        # Two days later, outside every window below but the last-digits one.
        b4 = await add_payment(
            b, eat(nxt + timedelta(days=1), 13), status=PaymentStatus.failed, phone="254712340999"
        )
        prev = d - timedelta(days=1)
        async with admin(server) as client:

            async def ids(**params: str) -> list[uuid.UUID]:
                r = await client.get("/admin/transactions", params=params)
                assert r.status_code == 200, r.text
                return row_ids(r.text)

            window = {"from": d.isoformat(), "to": nxt.isoformat()}
            assert await ids(**window) == [b2, b1, a2, a1]
            assert await ids(**{"from": d.isoformat(), "to": d.isoformat()}) == [b1, a2, a1]
            assert await ids(**{"from": prev.isoformat(), "to": prev.isoformat()}) == [b3]
            assert await ids(**window, status="failed") == [a2]
            assert await ids(**window, status="success") == [b1, a1]
            assert await ids(**window, source="telegram") == [b1]
            assert await ids(**window, tenant=a.slug) == [a2, a1]
            assert await ids(**window, tenant=str(b.id)) == [b2, b1]
            assert await ids(tenant=b.slug, status="success") == [b1, b3]
            wide = {"from": prev.isoformat(), "to": nxt.isoformat()}
            assert await ids(**wide, phone="0712345678") == [a1, b3]  # a full number: exact
            assert await ids(**wide, phone="254712345678") == [a1, b3]
            assert await ids(**wide, phone="712 345 678") == [a1, b3]
            assert await ids(**wide, phone="071") == [b1, a1, b3]  # the start of a number
            assert await ids(**wide, phone="2547129") == [b1]
            assert await ids(**wide, phone="678") == [b2, b1, a1, b3]  # last digits
            assert await ids(**wide, phone="0678") == []  # "0…" is a start, not an ending
            assert await ids(**wide, phone="111") == [a2]
            # An ending of nines has no "next" prefix to bound the reversed range: still exact.
            later = {"from": prev.isoformat(), "to": (nxt + timedelta(days=1)).isoformat()}
            assert await ids(**later, phone="999") == [b4]
            assert await ids(**later, phone="40999") == [b4]
            assert await ids(**wide, phone="678", tenant=a.slug) == [a1]
            assert await ids(**wide, phone="0110000678", status="cancelled") == [b2]

            page = await client.get("/admin/transactions", params={**window, "tenant": b.slug})
            assert f'<a href="/admin/tenants/{b.id}">Kibanda B</a>' in page.text
            assert "KES 1,250" in page.text and "0712 999 678" in page.text
            # 12:00 EAT is 09:00 UTC: the page shows Nairobi time.
            assert f"{d.strftime('%d %b %Y')} 12:00:00" in page.text

    async def test_bad_filters_are_shown_by_the_field(self, server: LiveServer) -> None:
        async with admin(server) as client:
            cases = [
                (
                    {"tenant": "no-such-business"},
                    "tenant",
                    "No business with the slug or id “no-such-business”.",
                ),
                ({"tenant": str(uuid.uuid4())}, "tenant", "No business with the slug or id"),
                ({"phone": "12"}, "phone", "Type 3 to 12 digits of the phone number"),
                ({"phone": "07a2"}, "phone", "Type 3 to 12 digits of the phone number"),
                ({"phone": "0712345678901"}, "phone", "Type 3 to 12 digits"),
                ({"from": "2025-02-10", "to": "2025-02-01"}, "to", "“To” is before “From”."),
                ({"from": "10/02/2025"}, "from", "Use a date like 2025-03-31."),
                ({"status": "paid"}, "status", "Choose a status from the list."),
                ({"source": "fax"}, "source", "Choose a source from the list."),
            ]
            for params, field, message in cases:
                r = await client.get("/admin/transactions", params=params)
                assert r.status_code == 422, (params, r.status_code)
                m = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', r.text)
                assert m and message in m.group(1).replace("&#34;", '"'), (params, r.text[-2000:])
                assert 'aria-invalid="true"' in r.text
                assert 'id="transactions"' not in r.text
                # What was typed stays in the form.
                for key, value in params.items():
                    assert f'value="{value}"' in r.text or key in ("status", "source")


class TestKeysetPages:
    async def test_three_pages_without_gaps_or_repeats_and_newer_goes_back(self, server: LiveServer) -> None:
        t, _ = await make_tenant(name="Pages Shop")
        d = a_day()
        made = [await add_payment(t, eat(d, 8, i)) for i in range(5)]
        # Two payments in the same microsecond: the id breaks the tie.
        same = eat(d, 9)
        made += [await add_payment(t, same), await add_payment(t, same)]
        tie = sorted(made[5:], key=lambda x: x.hex, reverse=True)
        expected = tie + list(reversed(made[:5]))  # newest first
        async with admin(server) as client:
            first = await client.get(
                "/admin/transactions", params={"tenant": t.slug, "from": d.isoformat(), "limit": "3"}
            )
            assert first.status_code == 200 and 'name="limit" value="3"' in first.text
            assert link(first.text, "prev") is None
            p1 = row_ids(first.text)
            older = link(first.text, "next")
            assert older is not None and "limit=3" in older and f"tenant={t.slug}" in older
            second = await client.get(older)
            p2 = row_ids(second.text)
            third = await client.get(link(second.text, "next") or "")
            p3 = row_ids(third.text)
            assert (len(p1), len(p2), len(p3)) == (3, 3, 1)
            assert p1 + p2 + p3 == expected
            assert link(third.text, "next") is None
            # "← Newer" gives back exactly the page before.
            back2 = await client.get(link(third.text, "prev") or "")
            assert row_ids(back2.text) == p2
            back1 = await client.get(link(back2.text, "prev") or "")
            assert row_ids(back1.text) == p1
            assert link(back1.text, "prev") is None  # nothing newer than the first page
            assert link(back1.text, "next") == older

    async def test_page_size_is_capped(self, server: LiveServer) -> None:
        t, _ = await make_tenant(name="Cap Shop")
        d = a_day()
        for i in range(3):
            await add_payment(t, eat(d, 8, i))
        async with admin(server) as client:
            r = await client.get("/admin/transactions", params={"tenant": t.slug, "limit": "5000"})
            assert r.status_code == 200 and 'name="limit" value="100"' in r.text
            assert len(row_ids(r.text)) == 3
            r = await client.get("/admin/transactions", params={"tenant": t.slug, "limit": "x"})
            assert r.status_code == 200 and 'name="limit"' not in r.text  # the default, 50

    async def test_a_broken_cursor_is_a_clear_422(self, server: LiveServer) -> None:
        async with admin(server) as client:
            for cursor in ("garbage!!", "WyJub3QgYSBkYXRlIiwgIngiXQ", "eyJhIjogMX0"):
                r = await client.get("/admin/transactions", params={"cursor": cursor})
                assert r.status_code == 422, cursor
                assert "This page link is broken or was cut short. Start again from the first page." in r.text
                assert 'id="transactions"' not in r.text


class TestAccess:
    async def test_only_platform_admins(self, server: LiveServer) -> None:
        t, owner = await make_tenant(name="Nosy Shop")
        pid = await add_payment(t, eat(a_day(), 9))
        cashier = await make_user(tenant=t, role=Role.cashier)
        for user in (owner, cashier):
            async with closing(await business_client(server.url, user)) as client:
                for url in ("/admin/transactions", f"/admin/transactions/{pid}"):
                    r = await client.get(url)
                    assert r.status_code == 403, url
                    assert "This is for platform administrators (role platform_admin)." in r.text
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            r = await anonymous.get("/admin/transactions?status=failed")
            assert r.status_code == 303
            assert r.headers["location"] == "/login?next=/admin/transactions%3Fstatus%3Dfailed"

    async def test_unknown_or_malformed_payment_id_is_404(self, server: LiveServer) -> None:
        async with admin(server) as client:
            for pid in (str(uuid.uuid4()), "not-a-uuid", "1"):
                r = await client.get(f"/admin/transactions/{pid}")
                assert r.status_code == 404, pid
                assert "No such payment." in r.text


def callback_body(checkout_id: str, desc: str) -> bytes:
    return json.dumps(
        {
            "Body": {
                "stkCallback": {
                    "MerchantRequestID": "29115-34620561-1",
                    "CheckoutRequestID": checkout_id,
                    "ResultCode": 1032,
                    "ResultDesc": desc,
                }
            }
        }
    ).encode()


class TestPaymentDetail:
    async def test_shows_every_field_callbacks_escaped_and_ledger(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Detail Duka")
        key = await make_api_key(tenant=tenant)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
            r = await api.post(
                "/api/stk-push",
                json={"phone": "0722000111", "amount": 150, "name": "Wanjiku"},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "detail-key-1"},
            )
            assert r.status_code == 201, r.text
            final = await wait_for_final(api, key, r.json()["id"])
            assert final["status"] == "success"
            checkout_id = final["checkout_request_id"]
            async with unit_of_work(readonly=True) as session:
                channel = await tenants.get_channel(session, tenant.id)
                assert channel is not None
            # A second, hostile callback for the same push: stored as received, changes nothing.
            hostile = callback_body(checkout_id, "<script>alert('x')</script>")
            r = await api.post(
                f"/callbacks/daraja/{channel.callback_token}",
                content=hostile,
                headers={"content-type": "application/json", "X-Request-Id": "req-hostile-1"},
            )
            assert r.status_code == 200

        async def processed() -> bool:
            async with unit_of_work(readonly=True) as session:
                n = await session.scalar(
                    select(func.count())
                    .select_from(CallbackInbox)
                    .where(
                        CallbackInbox.checkout_request_id == checkout_id,
                        CallbackInbox.processed_at.is_not(None),
                    )
                )
                return n == 2

        await wait_until(processed)
        async with unit_of_work(readonly=True) as session:
            payment = await session.get(Payment, uuid.UUID(final["id"]))
            assert payment is not None
            transfers = list(await session.scalars(select(Transfer).where(Transfer.payment_id == payment.id)))
            inbox_id = await session.scalar(
                select(func.min(CallbackInbox.id)).where(CallbackInbox.checkout_request_id == checkout_id)
            )
        # Failed jobs about this payment and one of its callbacks, and one about another payment.
        async with unit_of_work() as session:
            for actor, kw in (
                ("payments.check_payment", {"payment_id": str(payment.id)}),
                ("payments.process_callback", {"inbox_id": inbox_id}),
                ("payments.check_payment", {"payment_id": str(uuid.uuid4())}),
            ):
                session.add(JobOutbox(actor=actor, kwargs=kw, failed_at=utcnow(), error=f"boom {actor}"))
        async with admin(server) as client:
            r = await client.get(f"/admin/transactions/{payment.id}")
            assert r.status_code == 200, r.text
            html = r.text
            assert "Jobs waiting or failed (2)" in html
            assert "boom payments.check_payment" in html and "boom payments.process_callback" in html
            for text in (
                "Detail Duka",
                f'<a href="/admin/tenants/{tenant.id}">',
                channel.business_short_code,
                "KES 150",
                "0722 000 111",
                "Wanjiku",
                payment.receipt or "missing receipt",
                f"<code>{checkout_id}</code>",
                "<code>detail-key-1</code>",
                f"{payment.commission_bps} bps",
                "Callbacks (2)",
                "req-hostile-1",
                f"Ledger transfers ({len(transfers)})",
            ):
                assert text in html, text
            for t in transfers:
                assert t.kind in html
            # The payloads, pretty-printed and escaped.
            assert f'"CheckoutRequestID": "{checkout_id}"' in html.replace("&#34;", '"')
            assert '"MpesaReceiptNumber"' in html.replace("&#34;", '"')
            assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
            assert "<script>alert" not in html
            assert html.count('<pre class="payload"') == 2
            # The way back keeps the list's filters.
            listed = await client.get(
                "/admin/transactions", params={"tenant": tenant.slug, "status": "success"}
            )
            m = re.search(rf'href="(/admin/transactions/{payment.id}\?back=[^"]+)"', listed.text)
            assert m
            again = await client.get(m.group(1).replace("&amp;", "&"))
            assert (
                f'<a href="/admin/transactions?tenant={tenant.slug}&amp;status=success" id="back">'
                in again.text
            )
            # An outside "back" is ignored.
            evil = await client.get(
                f"/admin/transactions/{payment.id}", params={"back": "https://evil.test/"}
            )
            assert '<a href="/admin/transactions" id="back">' in evil.text
