"""One customer book per business, filtered by channel: a business with two tills sees each till's
customers (with their whole book's figures), payments, dashboard figures and exports, through the same
use cases every front end calls; another business's channel is 404, whoever asks."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from openpyxl import load_workbook

from core.access.actor import Actor, Via
from core.auth.models import Role
from core.customers.schemas import CustomerQuery
from core.customers.use_cases import search_customers
from core.errors import NotFound
from core.exports.use_cases import export_customers, export_transactions
from core.payments.service import TransactionFilter
from core.payments.use_cases import (
    business_dashboard,
    channel_choices,
    home_view,
    list_payments,
    payments_page,
)
from core.tenants.channels import NO_SUCH_CHANNEL
from core.tenants.models import Mode
from tests.conftest import LiveServer
from tests.support.channels import AKINYI, KAMAU, OTIENO, SECOND, WANJIKU, TwoTills, two_tills
from tests.support.factories import make_tenant, make_user

# (phone, name, requested_count, requested_total, paid_count, paid_total): the whole book's figures
WANJIKU_ROW = (WANJIKU, "Wanjiku", 2, 150, 2, 150)
OTIENO_ROW = (OTIENO, "Otieno", 2, 50, 1, 30)
KAMAU_ROW = (KAMAU, "Kamau", 1, 40, 1, 40)
AKINYI_ROW = (AKINYI, "Akinyi", 1, 70, 0, 0)


def owner_of(b: TwoTills) -> Actor:
    return Actor.for_user(user_id=b.owner_id, tenant_id=b.tenant.id, role=Role.owner, via=Via.panel)


async def book(actor: Actor, channel_id: uuid.UUID | None) -> tuple[int, list[tuple[object, ...]]]:
    page = await search_customers(actor, query=CustomerQuery(channel_id=channel_id, per_page=500))
    assert page.mode is Mode.live
    rows = [
        (c.phone, c.name, c.requested_count, c.requested_total, c.paid_count, c.paid_total)
        for c in page.items
    ]
    return page.total, sorted(rows)


def sheet(path: Path) -> list[tuple[object, ...]]:
    try:
        ws = load_workbook(path, read_only=True).active
        assert ws is not None
        return list(ws.iter_rows(values_only=True))
    finally:
        path.unlink(missing_ok=True)


class TestCustomerBook:
    async def test_each_till_shows_its_customers_with_their_whole_figures(self, server: LiveServer) -> None:
        b = await two_tills()
        owner = owner_of(b)
        assert await book(owner, None) == (4, sorted([WANJIKU_ROW, OTIENO_ROW, KAMAU_ROW, AKINYI_ROW]))
        # Wanjiku paid 100 at Main and 50 at the till: 150 under either, one book.
        assert await book(owner, b.main) == (3, sorted([WANJIKU_ROW, OTIENO_ROW, KAMAU_ROW]))
        # Akinyi never paid (still pending) but was asked to through the till; Kamau's only payment there
        # was the channel's KES 1 test, which is not a customer payment.
        assert await book(owner, b.till) == (2, sorted([WANJIKU_ROW, AKINYI_ROW]))

    async def test_the_channel_filter_combines_with_the_others(self, server: LiveServer) -> None:
        b = await two_tills()
        page = await search_customers(owner_of(b), query=CustomerQuery(channel_id=b.till, has_paid=True))
        assert [(c.phone, c.paid_total) for c in page.items] == [(WANJIKU, 150)]
        page = await search_customers(owner_of(b), query=CustomerQuery(channel_id=b.main, q="otie"))
        assert [c.phone for c in page.items] == [OTIENO]

    async def test_the_export_takes_the_same_filter(self, server: LiveServer) -> None:
        b = await two_tills()
        built = await export_customers(owner_of(b), query=CustomerQuery(channel_id=b.till))
        rows = sheet(built.path)
        assert built.rows == 2
        assert sorted(r[:5] for r in rows[1:]) == [
            ("Akinyi", AKINYI, 1, 0, 0),
            ("Wanjiku", WANJIKU, 2, 2, 150),
        ]


class TestPayments:
    async def test_the_list_and_the_numbered_pages_show_one_channel(self, server: LiveServer) -> None:
        b = await two_tills()
        owner = owner_of(b)
        main = await list_payments(owner, filters=TransactionFilter(channel_id=b.main), limit=50)
        assert {p.id for p in main.items} == b.main_payments
        assert {p.channel_id for p in main.items} == {b.main}
        till = await list_payments(owner, filters=TransactionFilter(channel_id=b.till), limit=50)
        assert {p.id for p in till.items} == b.till_payments
        everything = await list_payments(owner, filters=TransactionFilter(), limit=50)
        assert {p.id for p in everything.items} == b.main_payments | b.till_payments
        rows, more = await payments_page(
            owner, filters=TransactionFilter(channel_id=b.till, customer_only=True), page=1, per_page=10
        )
        assert (
            sorted((p.phone, p.amount, p.status.value) for p in rows)
            == [
                (WANJIKU, 50, "success"),
                (AKINYI, 70, "pending"),
            ]
            and not more
        )

    async def test_a_cashier_sees_their_own_payments_of_that_channel(self, server: LiveServer) -> None:
        b = await two_tills()
        cashier = await make_user(tenant=b.tenant, role=Role.cashier)
        actor = Actor.for_user(user_id=cashier.id, tenant_id=b.tenant.id, role=Role.cashier, via=Via.panel)
        page = await list_payments(actor, filters=TransactionFilter(channel_id=b.main), limit=50)
        assert page.items == []  # the owner's test data: none of it is the cashier's

    async def test_the_export_takes_the_same_filter(self, server: LiveServer) -> None:
        b = await two_tills()
        built = await export_transactions(owner_of(b), filters=TransactionFilter(channel_id=b.main))
        rows = sheet(built.path)
        assert rows[0][:5] == ("Date (EAT)", "Phone", "Customer", "Amount (KES)", "Status")
        assert sorted((r[1], r[3], r[4]) for r in rows[1:]) == [
            (WANJIKU, 100, "success"),
            (OTIENO, 20, "cancelled"),
            (OTIENO, 30, "success"),
            (KAMAU, 40, "success"),
        ]


class TestDashboard:
    async def test_the_figures_of_one_channel(self, server: LiveServer) -> None:
        b = await two_tills()
        owner = owner_of(b)
        whole = await home_view(owner)
        main = await home_view(owner, channel_id=b.main)
        till = await home_view(owner, channel_id=b.till)
        # (collected, paid, not paid, pending) over customer payments only
        figures = [
            (v.summary.total_processed, v.summary.paid, v.summary.not_paid, v.summary.pending)
            for v in (whole, main, till)
        ]
        assert figures == [(220, 4, 1, 1), (170, 3, 1, 0), (50, 1, 0, 1)]
        # The chart: today's bar holds each channel's own takings.
        assert [sum(d.paid_kes for d in v.days) for v in (whole, main, till)] == [220, 170, 50]
        assert [sum(d.unpaid for d in v.days) for v in (whole, main, till)] == [1, 1, 0]
        assert sorted(c.phone for c in till.recent_customers or []) == [WANJIKU, AKINYI]
        assert sorted(c.phone for c in main.recent_customers or []) == [WANJIKU, OTIENO, KAMAU]
        # One wallet for every channel: the commission is the business's whatever the filter.
        assert main.commission == till.commission == whole.commission
        api = await business_dashboard(owner, channel_id=b.till)
        assert api.summary == till.summary

    async def test_the_choices_name_both_channels(self, server: LiveServer) -> None:
        b = await two_tills()
        choices = await channel_choices(owner_of(b))
        assert [(c.id, c.name, c.mode) for c in choices] == [
            (b.main, "Main", Mode.live),
            (b.till, SECOND, Mode.live),
        ]
        assert [c.id for c in await channel_choices(owner_of(b), book_only=True)] == [b.main, b.till]


class TestAnotherBusinessChannel:
    async def test_is_no_such_channel_everywhere(self, server: LiveServer) -> None:
        b = await two_tills()
        other, _ = await make_tenant(name="Other Duka")
        owner = owner_of(b)
        foreign = await channel_choices(
            Actor.for_user(user_id=uuid.uuid4(), tenant_id=other.id, role=Role.owner, via=Via.panel)
        )
        for channel_id in (foreign[0].id, uuid.uuid4()):
            for call in (
                search_customers(owner, query=CustomerQuery(channel_id=channel_id)),
                export_customers(owner, query=CustomerQuery(channel_id=channel_id)),
                list_payments(owner, filters=TransactionFilter(channel_id=channel_id)),
                payments_page(owner, filters=TransactionFilter(channel_id=channel_id), page=1, per_page=5),
                export_transactions(owner, filters=TransactionFilter(channel_id=channel_id)),
                home_view(owner, channel_id=channel_id),
                business_dashboard(owner, channel_id=channel_id),
            ):
                with pytest.raises(NotFound) as caught:
                    await call
                assert caught.value.message == NO_SUCH_CHANNEL
