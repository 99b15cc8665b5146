"""Searching the customer book (core/customers/service.py `customers.search`): a name fragment in any
case, a phone's digits as people type them, one business's one book only; a bounded count (`total`,
`total_capped`); every sort, both ways, paged without a row lost or repeated.

On Postgres also: the trigram index answers the search as the application's role, under row-level
security (the migration marks LIKE and ILIKE leakproof so the policy lets it), and the model declares
the index the migration builds."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.types import InlineKeyboardMarkup
from alembic import command
from sqlalchemy import ColumnElement, Table, insert, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateIndex

from bots.middlewares import Actor as BotActor
from bots.routers.customers import CuCb
from bots.routers.customers import render as bot_render
from core.auth.models import Role, User
from core.customers import service as customer_service
from core.customers.models import Customer
from core.customers.schemas import CustomerPage, CustomerQuery, CustomerSort
from core.customers.service import COUNT_CAP, SEARCH_COUNT_CAP, customers, search_condition
from core.db import Scope
from core.migrate import alembic_config, upgrade
from core.runtime import runtime, unit_of_work
from core.tenants.models import Mode, TenantStatus
from tests.conftest import LiveServer
from tests.support import services
from tests.support.factories import make_tenant
from tests.support.migrations import run, scratch_database, tenant
from tests.support.panel import business_client, rows_of, text_of

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    phone: str
    name: str | None
    paid_total: int = 0
    paid_count: int = 0
    requested_count: int = 1
    requested_total: int = 100
    first_seen: int = 0  # minutes after T0
    last_seen: int = 0


async def add(tenant_id: uuid.UUID, mode: Mode, rows: list[Row]) -> None:
    async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
        session.add_all(
            Customer(
                tenant_id=tenant_id,
                mode=mode,
                phone=r.phone,
                name=r.name,
                requested_count=max(r.requested_count, r.paid_count),
                requested_total=r.requested_total,
                paid_count=r.paid_count,
                paid_total=r.paid_total,
                first_seen_at=T0 + timedelta(minutes=r.first_seen),
                last_seen_at=T0 + timedelta(minutes=r.last_seen),
                last_paid_at=T0 if r.paid_count else None,
            )
            for r in rows
        )


async def search(
    tenant_id: uuid.UUID, mode: Mode = Mode.live, *, count_cap: int | None = None, **query: Any
) -> CustomerPage:
    extra = {} if count_cap is None else {"count_cap": count_cap}
    async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
        return await customers.search(
            session, tenant_id=tenant_id, mode=mode, query=CustomerQuery(**query), **extra
        )


async def phones(tenant_id: uuid.UUID, q: str, mode: Mode = Mode.live) -> list[str]:
    page = await search(tenant_id, mode, q=q, per_page=500)
    assert page.total == len(page.items) and not page.total_capped
    return sorted(c.phone for c in page.items)


async def new_business() -> uuid.UUID:
    tenant, _ = await make_tenant(name="Search Shop")
    return tenant.id


BOOK = [
    Row("254722123456", "Wanjiku Kamau"),
    Row("254733000111", "MARY WANJIRU"),
    Row("254711555777", "Otieno Ochieng"),
    Row("254110123456", "Achieng' O."),
    Row("254799000999", None),
    Row("254700111222", "50% Off Shop"),
    Row("254700333444", "Mama_Mboga"),
    Row("254700555666", "Back\\slash"),
]


class TestNameFragment:
    async def test_a_fragment_finds_every_name_holding_it_in_any_case(self, server: LiveServer) -> None:
        b = await new_business()
        await add(b, Mode.live, BOOK)
        assert await phones(b, "wanj") == ["254722123456", "254733000111"]
        assert await phones(b, "WANJ") == ["254722123456", "254733000111"]
        assert await phones(b, "Wanjiku") == ["254722123456"]
        # inside a word, across words, punctuation
        assert await phones(b, "njir") == ["254733000111"]
        assert await phones(b, "u kam") == ["254722123456"]
        # several words: each looked up, the whole (order, spaces) checked
        assert await phones(b, "mary wanj") == ["254733000111"]
        assert await phones(b, "WANJIKU KAMAU") == ["254722123456"]
        assert await phones(b, "kamau wanjiku") == []
        assert await phones(b, "wanjiku  kamau") == []
        assert await phones(b, "otieno och") == ["254711555777"]
        assert await phones(b, "achieng'") == ["254110123456"]
        assert await phones(b, "ochieng") == ["254711555777"]
        assert await phones(b, "nobody") == []

    async def test_like_wildcards_in_the_search_are_plain_characters(self, server: LiveServer) -> None:
        b = await new_business()
        await add(b, Mode.live, BOOK)
        assert await phones(b, "%") == ["254700111222"]
        assert await phones(b, "_") == ["254700333444"]
        assert await phones(b, "a_m") == ["254700333444"]
        assert await phones(b, "\\") == ["254700555666"]
        assert await phones(b, "k\\s") == ["254700555666"]


class TestPhoneDigits:
    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            ("0722 12", ["254722123456"]),
            ("72212", ["254722123456"]),
            ("0722123456", ["254722123456"]),
            ("+254 722 123 456", ["254722123456"]),
            ("254722123456", ["254722123456"]),
            (
                "+2547",
                [
                    "254700111222",
                    "254700333444",
                    "254700555666",
                    "254711555777",
                    "254722123456",
                    "254733000111",
                    "254799000999",
                ],
            ),
            ("0110 123", ["254110123456"]),
            ("+254110123456", ["254110123456"]),
            # the last digits, as on a receipt
            ("3456", ["254110123456", "254722123456"]),
            ("000 999", ["254799000999"]),
        ],
    )
    async def test_digits_as_people_type_them(self, server: LiveServer, q: str, expected: list[str]) -> None:
        b = await new_business()
        await add(b, Mode.live, BOOK)
        assert await phones(b, q) == expected

    async def test_digits_also_match_a_name_holding_them(self, server: LiveServer) -> None:
        b = await new_business()
        await add(b, Mode.live, BOOK)
        # no phone in the book holds "50"; the name "50% Off Shop" does
        assert await phones(b, "50%") == ["254700111222"]


class TestScoping:
    async def test_only_the_business_and_mode_searched(self, server: LiveServer) -> None:
        b, other = await new_business(), await new_business()
        await add(b, Mode.live, [Row("254722123456", "Wanjiku Kamau")])
        await add(b, Mode.test, [Row("254722123457", "Wanjiku Test"), Row("254722123456", "Wanjiku Kamau")])
        await add(other, Mode.live, [Row("254722123458", "Wanjiku Other"), Row("254722123456", "Wanjiku")])
        assert await phones(b, "wanj") == ["254722123456"]
        assert await phones(b, "0722 123") == ["254722123456"]
        assert await phones(b, "wanj", Mode.test) == ["254722123456", "254722123457"]
        assert await phones(other, "wanj") == ["254722123456", "254722123458"]
        assert await phones(other, "wanj", Mode.test) == []
        page = await search(b, q="wanj")
        assert [(c.name, c.phone) for c in page.items] == [("Wanjiku Kamau", "254722123456")]


def numbered(n: int, name: str = "Wafula") -> list[Row]:
    return [Row(f"2547000{i:05d}", f"{name} {i}", last_seen=i) for i in range(1, n + 1)]


class TestCounts:
    async def test_exact_when_under_the_cap(self, server: LiveServer) -> None:
        b = await new_business()
        await add(b, Mode.live, [*numbered(12), Row("254711000000", "Other")])
        first = await search(b, q="wafula", per_page=5)
        assert (first.total, first.total_capped, len(first.items)) == (12, False, 5)
        # the last page counts itself
        last = await search(b, q="wafula", per_page=5, page=3)
        assert (last.total, last.total_capped, len(last.items)) == (12, False, 2)
        # a full last page, and a page past the end
        full = await search(b, q="wafula", per_page=4, page=3)
        assert (full.total, full.total_capped, len(full.items)) == (12, False, 4)
        past = await search(b, q="wafula", per_page=5, page=9)
        assert (past.total, past.total_capped, past.items) == (12, False, [])
        none = await search(b, q="nobody", per_page=5)
        assert (none.total, none.total_capped, none.items) == (0, False, [])
        everyone = await search(b, per_page=5)
        assert (everyone.total, everyone.total_capped) == (13, False)

    async def test_capped_a_lower_bound_with_a_page_after(self, server: LiveServer) -> None:
        b = await new_business()
        await add(b, Mode.live, numbered(12))
        # Counting stops at the cap: more than 5 match.
        first = await search(b, q="wafula", per_page=2, count_cap=5)
        assert (first.total, first.total_capped, len(first.items)) == (5, True, 2)
        # Past the cap, it counts to the end of the page it shows: more than 8 match, one more page.
        deep = await search(b, q="wafula", per_page=2, page=4, count_cap=5)
        assert (deep.total, deep.total_capped, len(deep.items)) == (8, True, 2)
        # The last full page: exactly 12, nothing after.
        last = await search(b, q="wafula", per_page=2, page=6, count_cap=5)
        assert (last.total, last.total_capped, len(last.items)) == (12, False, 2)
        # Exactly the cap is exact.
        exact = await search(b, q="wafula", per_page=2, count_cap=12)
        assert (exact.total, exact.total_capped) == (12, False)
        # Without a search too (the whole book).
        book = await search(b, per_page=2, count_cap=5)
        assert (book.total, book.total_capped) == (5, True)

    async def test_the_cap_is_ten_thousand_as_documented(self, server: LiveServer) -> None:
        assert (COUNT_CAP, SEARCH_COUNT_CAP) == (10_000, 2_000)
        described = str(CustomerPage.model_fields["total"].description)
        assert "10 000" in described and "2 000 with a search text" in described


# Ties on purpose: equal totals, counts and times, and a customer without a name.
SORT_BOOK = [
    Row(
        "254700000001",
        "Baraka",
        paid_total=300,
        paid_count=2,
        requested_count=3,
        requested_total=500,
        first_seen=5,
        last_seen=50,
    ),
    Row(
        "254700000002",
        "Achieng",
        paid_total=300,
        paid_count=1,
        requested_count=1,
        requested_total=300,
        first_seen=1,
        last_seen=50,
    ),
    Row(
        "254700000003",
        None,
        paid_total=0,
        paid_count=0,
        requested_count=2,
        requested_total=200,
        first_seen=3,
        last_seen=10,
    ),
    Row(
        "254700000004",
        "Zawadi",
        paid_total=900,
        paid_count=3,
        requested_count=4,
        requested_total=900,
        first_seen=1,
        last_seen=70,
    ),
    Row(
        "254700000005",
        "Baraka",
        paid_total=100,
        paid_count=1,
        requested_count=2,
        requested_total=200,
        first_seen=7,
        last_seen=10,
    ),
    Row(
        "254700000006",
        "Chebet",
        paid_total=0,
        paid_count=0,
        requested_count=1,
        requested_total=50,
        first_seen=2,
        last_seen=20,
    ),
    Row(
        "254700000007",
        None,
        paid_total=100,
        paid_count=1,
        requested_count=1,
        requested_total=100,
        first_seen=9,
        last_seen=90,
    ),
]


def expected_order(rows: list[tuple[int, Customer]], sort: CustomerSort, desc: bool) -> list[str]:
    """The documented order: the column, then the row's id the same way; no name last either way."""

    def key(pair: tuple[int, Customer]) -> tuple[Any, ...]:
        _row_id, c = pair
        value = getattr(c, sort.value)
        if sort is CustomerSort.name:
            return (value is None, value or "")
        return (value,)

    ordered = sorted(rows, key=lambda p: (key(p), p[0]), reverse=desc)
    if sort is CustomerSort.name:
        # reverse=True would put the nameless first: they stay last.
        named = [p for p in ordered if p[1].name is not None]
        ordered = named + sorted((p for p in rows if p[1].name is None), key=lambda p: p[0], reverse=desc)
    return [c.phone for _, c in ordered]


# The whole book three ways: no search (the sort's own order), a search matching all of it (sorted
# from its matches, under the cap), and the same search with the cap below it (the sort's order).
WAYS: dict[str, dict[str, Any]] = {
    "book": {},
    "search": {"q": "0700 000 00"},
    "search past the cap": {"q": "0700 000 00", "count_cap": 3},
    # By name, past the cap, the page is looked for near the start of the name order first: with a
    # walk of 3 the first page is found there, later ones from the matches sorted.
    "search past the cap, short walk": {"q": "0700 000 00", "count_cap": 3},
}


class TestSortingAndPaging:
    @pytest.mark.parametrize("way", list(WAYS))
    @pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
    @pytest.mark.parametrize("sort", list(CustomerSort), ids=[s.value for s in CustomerSort])
    async def test_every_sort_pages_through_the_whole_book(
        self, server: LiveServer, sort: CustomerSort, desc: bool, way: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if way.endswith("short walk"):
            monkeypatch.setattr(customer_service, "NAME_WALK", 3)
        b = await new_business()
        await add(b, Mode.live, SORT_BOOK)
        await add(await new_business(), Mode.live, SORT_BOOK)  # another business's, just the same
        async with unit_of_work(readonly=True, scope=Scope.tenant(b)) as session:
            stored = (await session.scalars(select(Customer).where(Customer.tenant_id == b))).all()
            rows = [(c.id, c) for c in stored]
        expected = expected_order(rows, sort, desc)
        seen: list[str] = []
        for page_no in range(1, 5):
            page = await search(b, sort=sort, desc=desc, per_page=2, page=page_no, **WAYS[way])
            seen += [c.phone for c in page.items]
            if way.startswith("search past the cap") and page_no < 4:
                # counted to the end of the page, more after it
                assert (page.total, page.total_capped) == (max(3, 2 * page_no), True)
            else:
                assert (page.total, page.total_capped) == (len(expected), False)
        assert seen == expected

    async def test_a_search_keeps_the_sort(self, server: LiveServer) -> None:
        b = await new_business()
        await add(b, Mode.live, SORT_BOOK)
        by_total = await search(b, q="bara", sort=CustomerSort.paid_total, desc=True)
        assert [c.phone for c in by_total.items] == ["254700000001", "254700000005"]
        by_seen = await search(b, q="0700 000 00", sort=CustomerSort.last_seen_at, desc=False, per_page=3)
        assert [c.phone for c in by_seen.items] == ["254700000003", "254700000005", "254700000006"]
        assert (by_seen.total, by_seen.total_capped) == (7, False)


# -- Postgres: the index, as the application's role ------------------------------------------------
def _pg_only() -> None:
    if runtime().db.is_sqlite:
        pytest.skip("Postgres only: SQLite has no trigram index and no row-level security")


class TestPostgresIndex:
    async def test_the_model_declares_the_indexes_the_migration_builds(self, server: LiveServer) -> None:
        _pg_only()
        b = await new_business()
        async with unit_of_work(readonly=True, scope=Scope.tenant(b)) as session:
            rows = await session.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'ix_customers_search%'")
            )
            built: dict[str, str] = {name: sql for name, sql in rows.all()}
        table = Customer.__table__
        assert isinstance(table, Table)
        declared = {
            i.name: str(CreateIndex(i).compile(dialect=postgresql.dialect()))
            for i in table.indexes
            if str(i.name).startswith("ix_customers_search")
        }
        columns = "USING gin (tenant_id, name gin_trgm_ops, phone gin_trgm_ops)"
        assert built == {
            f"ix_customers_search_{m}": f"CREATE INDEX ix_customers_search_{m} ON public.customers {columns} "
            f"WHERE ((mode)::text = '{m}'::text)"
            for m in ("live", "test")
        }
        assert declared == {
            f"ix_customers_search_{m}": f"CREATE INDEX ix_customers_search_{m} ON customers {columns} "
            f"WHERE mode = '{m}'"
            for m in ("live", "test")
        }


# -- a book bigger than the cap, in the panel and the bot ------------------------------------------
BIG = COUNT_CAP + 30


async def big_business() -> tuple[uuid.UUID, User]:
    tenant, owner = await make_tenant(name="Big Book Duka")
    rows = [
        {
            "tenant_id": tenant.id,
            "mode": Mode.live,
            "phone": f"2547{i:08d}",
            "name": f"Mteja {i}",
            "requested_count": 1,
            "requested_total": 100,
            "paid_count": 0,
            "paid_total": 0,
            "first_seen_at": T0,
            "last_seen_at": T0 + timedelta(seconds=i),
        }
        for i in range(BIG)
    ]
    async with unit_of_work(scope=Scope.tenant(tenant.id)) as session:
        await session.execute(insert(Customer), rows)
    return tenant.id, owner


def bot_actor(tenant_id: uuid.UUID, owner: User) -> BotActor:
    return BotActor(
        user_id=owner.id,
        tenant_id=tenant_id,
        role=Role.owner,
        business="Big Book Duka",
        status=TenantStatus.active,
        status_reason=None,
    )


def buttons(markup: InlineKeyboardMarkup) -> list[str]:
    return [b.text for row in markup.inline_keyboard for b in row]


class TestABookBiggerThanTheCap:
    async def test_the_panel_says_more_than_and_pages_on(self, server: LiveServer) -> None:
        _, owner = await big_business()
        panel = await business_client(server.url, owner)
        try:
            first = await panel.get("/app/customers")
            assert first.status_code == 200, first.text
            assert text_of(first.text, "customer-count") == "More than 10,000 customers · page 1"
            assert 'order=desc&amp;page=2" rel="next"' in first.text
            # page 401 starts at the cap: counted to its end, still more after it
            deep = await panel.get("/app/customers", params={"page": "401"})
            assert text_of(deep.text, "customer-count") == "More than 10,025 customers · page 401"
            assert 'rel="next"' in deep.text
            # the last page (5 rows) knows the exact number
            last = await panel.get("/app/customers", params={"page": "402"})
            assert text_of(last.text, "customer-count") == f"{BIG} customers · page 402 of 402"
            assert len(rows_of(last.text, "customers")) == 5 and 'rel="next"' not in last.text
            # a search that matches few is exact, as always
            few = await panel.get("/app/customers", params={"q": "Mteja 999"})
            # the names Mteja 999 and 9990…9999, and the phones holding 999 (254700001999…)
            expected = sum(1 for i in range(BIG) if "mteja 999" in f"mteja {i}" or "999" in f"2547{i:08d}")
            assert text_of(few.text, "customer-count") == f"{expected} customers" == "19 customers"
            # a search counts to 2 000 (SEARCH_COUNT_CAP)
            many = await panel.get("/app/customers", params={"q": "mteja"})
            assert text_of(many.text, "customer-count") == "More than 2,000 customers · page 1"
            assert 'rel="next"' in many.text
        finally:
            await panel.aclose()

    async def test_the_bot_says_plus_and_pages_on(self, server: LiveServer) -> None:
        b, owner = await big_business()
        actor = bot_actor(b, owner)
        body, markup = await bot_render(actor, CuCb(), None)
        assert body.splitlines()[:2] == ["👥 <b>Customers</b> (10,000+)", "Sorted by total paid · page 1"]
        assert "Next ›" in buttons(markup)
        body, markup = await bot_render(actor, CuCb(p=1001), None)
        assert body.splitlines()[:2] == ["👥 <b>Customers</b> (10,010+)", "Sorted by total paid · page 1001"]
        assert "Next ›" in buttons(markup)
        body, markup = await bot_render(actor, CuCb(p=1003), None)
        assert body.splitlines()[:2] == [
            f"👥 <b>Customers</b> ({BIG})",
            "Sorted by total paid · page 1003 of 1003",
        ]
        assert "Next ›" not in buttons(markup) and "‹ Previous" in buttons(markup)


# -- the migration -------------------------------------------------------------------------------
BEFORE = "c3e9a1b5d746"
THIS = "d4f0b2c6e857"


@pytest.fixture
def scratch_url() -> Iterator[str]:
    yield from scratch_database("custsearch")


def search_index_state(url: str) -> tuple[bool, bool]:
    """(both ix_customers_search_* exist, LIKE and ILIKE are leakproof); SQLite: the indexes only."""
    if url.startswith("sqlite"):
        found = run(url, text("SELECT 1 FROM sqlite_master WHERE name LIKE 'ix_customers_search%'"))
        return bool(found), False
    found = run(url, text("SELECT 1 FROM pg_indexes WHERE indexname LIKE 'ix_customers_search%'"))
    assert len(found) in (0, 2)
    leakproof = run(
        url,
        text(
            "SELECT bool_and(proleakproof) FROM pg_proc "
            "WHERE oid IN ('pg_catalog.textlike'::regproc, 'pg_catalog.texticlike'::regproc)"
        ),
    )
    return bool(found), bool(leakproof[0][0])


def test_the_migration_builds_the_index_on_postgres_and_undoes_it(scratch_url: str) -> None:
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, BEFORE)
    assert search_index_state(scratch_url) == (False, False)
    command.upgrade(cfg, THIS)
    postgres = scratch_url.startswith("postgresql")
    # SQLite keeps its scan: nothing built there.
    assert search_index_state(scratch_url) == (postgres, postgres)
    command.downgrade(cfg, BEFORE)
    assert search_index_state(scratch_url) == (False, False)
    command.upgrade(cfg, "head")
    assert search_index_state(scratch_url) == (postgres, postgres)


def _index_conditions(plan: dict[str, Any]) -> list[str]:
    """The Index Cond of every scan of ix_customers_search_live in an EXPLAIN (FORMAT JSON) plan."""
    found = [plan.get("Index Cond", "")] if plan.get("Index Name") == "ix_customers_search_live" else []
    for child in plan.get("Plans", []):
        found += _index_conditions(child)
    return found


async def _explain_as_app(app_url: str, tenant_id: uuid.UUID, match: ColumnElement[bool]) -> list[str]:
    """The index conditions of a search, as the application's role sees the plan (row-level security)."""
    sql = str(
        select(Customer.id)
        .where(Customer.tenant_id == tenant_id, Customer.mode == Mode.live, match)
        .compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    ).replace("%%", "%")
    engine = create_async_engine(app_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            bound = await conn.scalar(
                text("SELECT NOT (rolsuper OR rolbypassrls) FROM pg_roles WHERE rolname = current_user")
            )
            assert bound is True  # the policies bind this role
            await conn.execute(
                text("SELECT set_config('app.scope', 'tenant', true), set_config('app.tenant_id', :t, true)"),
                {"t": str(tenant_id)},
            )
            # A few rows would be scanned whatever: the question is what the planner may do.
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = await conn.scalar(text(f"EXPLAIN (FORMAT JSON) {sql}"))
            found = (await conn.execute(text(sql))).scalars().all()
            assert len(found) == 1  # and the policy holds: the other business's match is not seen
    finally:
        await engine.dispose()
    doc = plan if isinstance(plan, list) else json.loads(plan)
    return _index_conditions(doc[0]["Plan"])


def test_row_level_security_lets_the_search_use_the_index_once_like_is_leakproof(scratch_url: str) -> None:
    """The policy comes first, and a condition that is not leakproof may not be evaluated before it,
    so not as an index condition either: without the migration's LEAKPROOF, `name ILIKE …` is a
    filter over every row the index finds for the business (its whole book). The btree indexes are
    dropped here (a scratch database) so that the search index is the planner's only way in."""
    if not scratch_url.startswith("postgresql"):
        pytest.skip("Postgres only: SQLite has no trigram index and no row-level security")
    app_url = make_url(scratch_url).set(username=services.APP_ROLE).render_as_string(hide_password=False)
    upgrade(app_url, migration_url=scratch_url)  # and grants the application's role
    shop, other = tenant(scratch_url, "Shop"), tenant(scratch_url, "Other")
    rows = [
        (shop, "254722123456", "Wanjiku Kamau"),
        (shop, "254711000111", "Otieno"),
        (other, "254722123456", "Wanjiku"),
    ]
    for tenant_id, phone, name in rows:
        run(scratch_url, insert(Customer).values(
            tenant_id=tenant_id, mode="live", phone=phone, name=name, requested_count=1, requested_total=10,
            paid_count=0, paid_total=0, first_seen_at=T0, last_seen_at=T0,
        ))  # fmt: skip
    unique = run(scratch_url, text("SELECT conname FROM pg_constraint WHERE conrelid = 'customers'::regclass "
                                   "AND contype = 'u'"))[0][0]  # fmt: skip
    run(
        scratch_url,
        text(f"ALTER TABLE customers DROP CONSTRAINT {unique}"),
        text("DROP INDEX ix_customers_tenant_mode_paid_total, ix_customers_tenant_mode_last_seen, "
             "ix_customers_tenant_mode_name_id"),
    )  # fmt: skip
    # (the search ORs the two for digits; with three rows the planner would rather filter the OR)
    matches = [(search_condition("wanjiku"), "~~*"), (Customer.phone.like("%72212%"), "~~")]
    for match, operator in matches:
        conditions = asyncio.run(_explain_as_app(app_url, shop, match))
        assert conditions and all(operator in c and "tenant_id =" in c for c in conditions), conditions
    run(
        scratch_url,
        *(
            text(f"ALTER FUNCTION pg_catalog.{f}(text, text) NOT LEAKPROOF")
            for f in ("textlike", "texticlike")
        ),
    )
    for match, _ in matches:
        conditions = asyncio.run(_explain_as_app(app_url, shop, match))
        # the index still finds the business's rows, but the match is only a filter after the policy
        assert conditions and not any("~~" in c for c in conditions), conditions
