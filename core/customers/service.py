"""The customer book: one row per business, mode and phone, counting requests and payments.

Two books per business: test (pushes on a simulator or sandbox channel) and live (production). Every
writer names the payment's mode and every reader the book it reads; which book an actor reads is decided
once, in core.payments.use_cases.book_mode (an API key its own mode's, a person the business's current
one). A business that collects through several channels (a till per branch) still keeps one book per
mode: a read may show only the customers of one channel (`through_channel`), with their whole figures.

Lock order (the whole of it is in core/ledger/service.py): payment row → customer row → ledger
accounts → tenant row. Both writers here lock the customer row: `record_request` (a push) runs before
the push holds its commission on the wallet, `record_paid` (a success, from the PaymentFinalised
subscriber) after the payment was updated and before billing posts the commission. Call them from
nowhere that already holds a ledger account or the tenant row.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.sql.util import ClauseAdapter

from core.customers.models import Customer
from core.customers.schemas import CustomerOut, CustomerPage, CustomerQuery, CustomerSort
from core.payments.models import CUSTOMER_SOURCES, Payment
from core.tenants.models import Mode
from core.upsert import insert_for

# A page's `total` counts at most this many matches (or to the end of the page, when further); a
# search by name or phone at most SEARCH_COUNT_CAP. Counting costs a read of each match, and a common
# fragment ("wanj") matches tens of thousands in a big book: 10 000 of them took 30-45 ms alone. A
# search's matches up to its cap are also what its page is sorted from (`search`): 2 000 takes in
# 4 digits of a phone number in a book of a million (0.14 %).
COUNT_CAP = 10_000
SEARCH_COUNT_CAP = 2_000
# A fragment the planner expects to match this many times the cap skips collecting its matches.
COMMON = 3
# How far down the name order a common fragment's page is looked for before its matches are sorted.
NAME_WALK = 5_000

# A payment counted in the book: run for every success, so built once as a Core statement on the table
# (no expression building, no ORM bulk-update path per payment).
_customers = Customer.__table__.c
_RECORD_PAID = (
    update(Customer.__table__)  # type: ignore[arg-type]
    .where(
        # Not the columns' own names: those are reserved for the SET clause's values.
        _customers.tenant_id == bindparam("b_tenant_id"),
        _customers.mode == bindparam("b_mode"),
        _customers.phone == bindparam("b_phone"),
    )
    .values(
        paid_count=_customers.paid_count + 1,
        paid_total=_customers.paid_total + bindparam("amount", type_=_customers.paid_total.type),
        last_paid_at=bindparam("at", type_=_customers.last_paid_at.type),
    )
)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_condition(q: str) -> ColumnElement[bool]:
    """A name fragment (any case) or, when `q` has digits, the phone's: "0722 12" finds 254722 12….

    On Postgres `name ILIKE` and `phone LIKE` on the bare columns are what ix_customers_search_*
    answer (and what row-level security lets them answer: the migration
    2026-12-07-1400_customer_search.py); `lower(name) LIKE` would not use them. SQLite reads ILIKE
    as lower() LIKE lower() and scans."""
    alts = [_name_match(q)]
    digits = "".join(ch for ch in q if ch.isdigit())
    if digits:
        # "0722 000" finds 254722000…: search the national part too
        alts.append(Customer.phone.like(f"%{digits.lstrip('0')}%"))
    return or_(*alts)


def _words(q: str) -> list[str]:
    """The runs of letters or digits in `q`: what pg_trgm takes trigrams of."""
    return re.findall(r"[^\W_]+", q)


def _name_match(q: str) -> ColumnElement[bool]:
    whole = f"%{_like_escape(q)}%"
    words = [w for w in _words(q) if len(w) >= 3]
    if len(_words(q)) < 2 or not words:
        return Customer.name.ilike(whole, escape="\\")
    # Several words ("grace wanj"): the index looks up each word of 3 or more on its own, and the
    # whole, spaces and all, is checked on what it finds (lower() LIKE: a filter, never an index
    # condition). The whole as one ILIKE would add trigrams for the words' edges (" wa": every
    # name with a word starting "wa"), long lists the index must walk: 20 ms, against 15.
    return and_(
        *(Customer.name.ilike(f"%{w}%") for w in words),
        func.lower(Customer.name).like(func.lower(whole), escape="\\"),
    )


def through_channel(channel_id: uuid.UUID) -> ColumnElement[bool]:
    """The customer was asked to pay at least once (any outcome) through this channel, in the book's
    mode: the channel filter of the book. It picks whom to show; their figures stay the whole book's,
    since a business keeps one book, however many tills it collects through. The caller checks the
    channel is the business's (core.tenants.channels). Answered from ix_payments_tenant_phone."""
    return exists().where(
        Payment.tenant_id == Customer.tenant_id,
        Payment.phone == Customer.phone,
        Payment.mode == Customer.mode,
        Payment.channel_id == channel_id,
        # The book counts only these (core.payments.service.create_pending): a channel's KES 1 test
        # to the owner's phone does not make the owner one of its customers.
        Payment.source.in_(list(CUSTOMER_SOURCES)),
    )


# The bot's and the dashboard's reads of the book, built once (building a statement per read cost as
# much as running it; bench/bot_updates.py). Parameters `tenant_id`, `phone`, `limit`, and the book's
# mode: the `mode` parameter, or an SQL expression (core.payments.use_cases.book_mode_sql).
def _get_stmt(mode: ColumnElement[str]) -> Select[Customer]:
    return select(Customer).where(
        Customer.tenant_id == bindparam("tenant_id"),
        Customer.mode == mode,
        Customer.phone == bindparam("phone"),
    )


def _recent_stmt(mode: ColumnElement[str]) -> Select[Customer]:
    return (
        select(Customer)
        .where(Customer.tenant_id == bindparam("tenant_id"), Customer.mode == mode)
        .order_by(Customer.last_seen_at.desc(), Customer.id.desc())
        .limit(bindparam("limit"))
    )


_GET = _get_stmt(bindparam("mode"))
_RECENT = _recent_stmt(bindparam("mode"))
_BY_MODE_SQL: dict[tuple[object, int], tuple[ColumnElement[str], Select[Customer]]] = {}


def _of_mode(
    build: Callable[[ColumnElement[str]], Select[Customer]], mode: ColumnElement[str]
) -> Select[Customer]:
    """`build`'s statement for a mode expression, built once per expression (a few constants)."""
    key = (build, id(mode))
    hit = _BY_MODE_SQL.get(key)
    if hit is None or hit[0] is not mode:
        if len(_BY_MODE_SQL) > 32:  # expressions built per call: never grow
            _BY_MODE_SQL.clear()
        hit = _BY_MODE_SQL[key] = (mode, build(mode))
    return hit[1]


class CustomerService:
    async def record_request(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        mode: Mode,
        phone: str,
        name: str | None,
        amount: int,
        at: datetime,
    ) -> None:
        """Count a push request, creating the customer on first sight. One atomic upsert, so two
        pushes to a new number at once cannot both insert. It locks the customer row: call it before
        anything in the ledger (lock order, above)."""
        table = Customer.__table__
        stmt = insert_for(session, table).values(
            tenant_id=tenant_id,
            mode=mode,
            phone=phone,
            name=name,
            requested_count=1,
            requested_total=amount,
            paid_count=0,
            paid_total=0,
            first_seen_at=at,
            last_seen_at=at,
        )
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.mode, table.c.phone],
            set_={
                "requested_count": table.c.requested_count + 1,
                "requested_total": table.c.requested_total + excluded.requested_total,
                "last_seen_at": excluded.last_seen_at,
                # latest non-empty name wins
                "name": func.coalesce(excluded.name, table.c.name),
            },
        )
        await session.execute(stmt)

    async def record_paid(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        mode: Mode,
        phone: str,
        amount: int,
        at: datetime,
    ) -> None:
        """Count a payment received in its mode's book; locks the customer row after the payment's,
        before the ledger."""
        await session.execute(
            _RECORD_PAID,
            {"b_tenant_id": tenant_id, "b_mode": mode, "b_phone": phone, "amount": amount, "at": at},
        )

    async def get(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, mode: Mode | ColumnElement[str], phone: str
    ) -> Customer | None:
        """One customer of one book; `mode` may be an SQL expression (core.payments.use_cases.book_mode_sql:
        the book's mode read in the same statement)."""
        params = {"tenant_id": tenant_id, "phone": phone}
        if isinstance(mode, Mode):
            return await session.scalar(_GET, {**params, "mode": mode})
        return await session.scalar(_of_mode(_get_stmt, mode), params)

    def _conditions(self, tenant_id: uuid.UUID, mode: Mode, q: CustomerQuery) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [Customer.tenant_id == tenant_id, Customer.mode == mode]
        if q.q:
            conds.append(search_condition(q.q))
        if q.min_paid is not None:
            conds.append(Customer.paid_total >= q.min_paid)
        if q.max_paid is not None:
            conds.append(Customer.paid_total <= q.max_paid)
        if q.seen_from is not None:
            conds.append(Customer.last_seen_at >= q.seen_from)
        if q.seen_to is not None:
            conds.append(Customer.last_seen_at <= q.seen_to)
        if q.has_paid is True:
            conds.append(Customer.paid_count > 0)
        elif q.has_paid is False:
            conds.append(Customer.paid_count == 0)
        if q.channel_id is not None:
            conds.append(through_channel(q.channel_id))
        return conds

    def _order(self, q: CustomerQuery) -> list[ColumnElement[Any]]:
        column = getattr(Customer, q.sort.value)
        order = column.desc() if q.desc else column.asc()
        tiebreak = Customer.id.desc() if q.desc else Customer.id.asc()
        if q.sort is CustomerSort.name:
            # Customers without a name go last whichever way we sort. Said as NULLS LAST (not a
            # leading `name IS NULL` key) so A→Z reads ix_customers_tenant_mode_name_id in order.
            return [order.nulls_last(), tiebreak]
        return [order, tiebreak]

    def _filtered(self, tenant_id: uuid.UUID, mode: Mode, q: CustomerQuery) -> Select[Any]:
        return select(Customer).where(*self._conditions(tenant_id, mode, q)).order_by(*self._order(q))

    async def search(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        mode: Mode,
        query: CustomerQuery,
        count_cap: int | None = None,
    ) -> CustomerPage:
        """A page of one book, and how many match: exactly up to COUNT_CAP (SEARCH_COUNT_CAP with a
        search text) or the end of this page, when further; past it that many and `total_capped` (a
        bounded count: a page of a book of a million never counts the million). `count_cap` is for
        tests.

        A search by name or phone first collects the matches, up to the cap, by the trigram index
        (`_matches`): when they are all there, the page is sorted from them, whatever the sort. Only
        a fragment matching more than the cap is paged in the sort's own order, where its matches are
        common enough to come soon; one the planner expects to match far more than that (`_common`)
        goes there at once. The planner, left to choose, walked the sort's index for fragments it
        thought common (or did not know were all at one end of it: "grace wanj" by name read half
        the book, 1.2 s)."""
        conds = self._conditions(tenant_id, mode, query)
        offset = (query.page - 1) * query.per_page
        cap = count_cap or (SEARCH_COUNT_CAP if query.q else COUNT_CAP)
        more_than_cap = False
        if query.q and _trigram_searchable(query.q):
            more_than_cap = await _common(session, conds, cap)
            if not more_than_cap:
                found = await self._matches(session, conds, cap)
                if len(found) <= cap:
                    # still by bitmap: the ids' rows, then sorted (never a walk of the sort's index)
                    rows = await self._page(session, [*conds[:2], _among(session, found)], query, offset)
                    await _plan(session, bitmap_only=False)  # the rest of the transaction as usual
                    return self._result(query, mode, rows, total=len(found), capped=False)
                more_than_cap = True
        if query.q and more_than_cap and query.sort is CustomerSort.name and _trigram_searchable(query.q):
            # A common family name ("otieno") is spread through A→Z: its page is in the first few
            # thousand names, so a short walk of the name index finds it. A first name ("grace") is
            # clustered: walking to it read 400 000 rows (580 ms at a million); its matches by the
            # trigram index, then sorted, cost what the matches cost instead (25-60 ms at 18 000).
            await _plan(session, bitmap_only=False)
            rows = await self._page_near_start(session, conds, query, offset)
            if len(rows) < query.per_page:
                await _plan(session, bitmap_only=True)
                rows = await self._page(session, conds, query, offset)
                await _plan(session, bitmap_only=False)
        else:
            if query.q:
                await _plan(session, bitmap_only=False)
            rows = await self._page(session, conds, query, offset)
        limit = max(cap, offset + query.per_page)
        if len(rows) < query.per_page and (rows or not offset):
            return self._result(query, mode, rows, total=offset + len(rows), capped=False)  # the last page
        if more_than_cap and limit == cap:
            # Counted already, or expected COMMON times over: counting to the cap would cost more
            # than the page (2 000 matches of "otieno", 3 % of a book, are 60 000 rows to read).
            return self._result(query, mode, rows, total=cap, capped=True)
        matching: Select[Any] = select(literal_column("1")).select_from(Customer).where(*conds)
        counted = await session.scalar(select(func.count()).select_from(matching.limit(limit + 1).subquery()))
        return self._result(query, mode, rows, total=min(counted or 0, limit), capped=(counted or 0) > limit)

    async def _matches(self, session: AsyncSession, conds: list[ColumnElement[bool]], cap: int) -> list[int]:
        """The ids of up to `cap` + 1 matches, by the trigram index on Postgres (a bitmap scan: the
        index's matches, each read once), in no order."""
        await _plan(session, bitmap_only=True)
        return list(await session.scalars(select(Customer.id).where(*conds).limit(cap + 1)))

    async def _page_near_start(
        self, session: AsyncSession, conds: list[ColumnElement[bool]], query: CustomerQuery, offset: int
    ) -> list[Customer]:
        """The page among the book's first NAME_WALK named customers in name order: when it is full
        there, it is the search's page (every match before it is there too). The walk reads
        ix_customers_tenant_mode_name_id alone (an index-only scan: id, name and phone are in it) and
        stops at NAME_WALK, a LIMIT in a subquery (as a condition, `id IN (…)`, the planner joined
        every match); only the page's rows are then read from the table."""
        # Named customers only: the nameless come last either way, so a page full of named ones is
        # the page. And without NULLS LAST the index is read forwards for A→Z, backwards for Z→A.
        order: list[ColumnElement[Any]] = (
            [Customer.name.desc(), Customer.id.desc()]
            if query.desc
            else [Customer.name.asc(), Customer.id.asc()]
        )
        walk = (
            select(Customer.id, Customer.tenant_id, Customer.mode, Customer.name, Customer.phone)
            .where(*conds[:2], Customer.name.is_not(None))
            .order_by(*order)
            .limit(NAME_WALK)
            .subquery()
        )
        # Conditions on the walk's columns are checked on the index's entries; any other (a paid
        # range, dates) on the table's row, joined by id.
        adapt = ClauseAdapter(walk).traverse
        stmt = (
            select(Customer)
            .join(walk, walk.c.id == Customer.id)
            .where(*(adapt(c) for c in conds[2:]))
            .order_by(*(adapt(o) for o in order))
        )
        return list(await session.scalars(stmt.limit(query.per_page).offset(offset)))

    async def _page(
        self, session: AsyncSession, conds: list[ColumnElement[bool]], query: CustomerQuery, offset: int
    ) -> list[Customer]:
        stmt = select(Customer).where(*conds).order_by(*self._order(query))
        return list(await session.scalars(stmt.limit(query.per_page).offset(offset)))

    @staticmethod
    def _result(
        query: CustomerQuery, mode: Mode, rows: list[Customer], *, total: int, capped: bool
    ) -> CustomerPage:
        return CustomerPage(
            items=[CustomerOut.model_validate(r) for r in rows],
            page=query.page,
            per_page=query.per_page,
            total=total,
            total_capped=capped,
            mode=mode,
        )

    async def recent(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        mode: Mode | ColumnElement[str],
        limit: int = 5,
        channel_id: uuid.UUID | None = None,
    ) -> list[CustomerOut]:
        """The book's most recently seen customers; of one channel's (`through_channel`) when given.
        `mode` may be an SQL expression (core.payments.use_cases.book_mode_sql)."""
        if channel_id is None:
            params: dict[str, object] = {"tenant_id": tenant_id, "limit": limit}
            if isinstance(mode, Mode):
                rows = await session.scalars(_RECENT, {**params, "mode": mode})
            else:
                rows = await session.scalars(_of_mode(_recent_stmt, mode), params)
            return [CustomerOut.model_validate(r) for r in rows]
        rows = await session.scalars(
            select(Customer)
            .where(Customer.tenant_id == tenant_id, Customer.mode == mode, through_channel(channel_id))
            .order_by(Customer.last_seen_at.desc(), Customer.id.desc())
            .limit(limit),
            {"tenant_id": tenant_id},  # a mode expression's parameter (book_mode_sql)
        )
        return [CustomerOut.model_validate(r) for r in rows]

    async def export_batches(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        mode: Mode,
        query: CustomerQuery,
        batch: int = 2000,
    ) -> AsyncIterator[Sequence[Sequence[object]]]:
        """Rows of one book (test or live) for its export, streamed from the database in batches."""
        stmt = self._filtered(tenant_id, mode, query).with_only_columns(
            Customer.name,
            Customer.phone,
            Customer.requested_count,
            Customer.paid_count,
            Customer.paid_total,
            Customer.first_seen_at,
            Customer.last_seen_at,
        )
        result = await session.stream(stmt.execution_options(yield_per=batch))
        async for part in result.partitions(batch):
            yield [tuple(r) for r in part]


def _trigram_searchable(q: str) -> bool:
    """Whether both of the search's alternatives give pg_trgm a trigram to look up: a run of 3
    letters or digits for the name, 3 digits for the phone. Without one, the index would be read
    whole; a fragment that short is common anyway, and the sort's order finds a page of it soon."""
    digits = "".join(ch for ch in q if ch.isdigit()).lstrip("0")
    return any(len(w) >= 3 for w in _words(q)) and (not digits or len(digits) >= 3)


class _Explain(Executable, ClauseElement):
    """EXPLAIN (FORMAT JSON) of a statement, its parameters bound as for the statement itself."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


async def _common(session: AsyncSession, conds: list[ColumnElement[bool]], cap: int) -> bool:
    """Whether the planner expects the search to match COMMON times `cap` or more (Postgres: an
    EXPLAIN, planned for these values; name and phone keep statistics of 1000 values, enough to tell
    1 % from 0.1 %). Such a fragment comes soon in any sort's order, and collecting its matches would
    walk the trigram index's long lists for nothing (20 ms for "wanj" at a million customers).
    SQLite: never."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    plan = await session.scalar(_Explain(select(Customer.id).where(*conds)))
    doc = json.loads(plan) if isinstance(plan, str) else plan
    return _most_rows(doc[0]["Plan"]) >= COMMON * cap


def _most_rows(node: dict[str, Any]) -> float:
    """The plan's largest row estimate: the index's matches. The top node's is lowered by the
    row-level security filter, whose per-statement parameters the planner cannot see (it guesses a
    fifth), though it removes nothing here: the search is already one business's."""
    return max([float(node["Plan Rows"]), *(_most_rows(child) for child in node.get("Plans", ()))])


def _among(session: AsyncSession, ids: list[int]) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: one statement to prepare whatever the number of ids.
        return Customer.id == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
    return Customer.id.in_(ids)


async def _plan(session: AsyncSession, *, bitmap_only: bool) -> None:
    """Postgres: a plan made for this search's values (a prepared statement's generic plan, after
    five runs on one connection, would choose once for every fragment), and with `bitmap_only` no
    index or sequential scan: the trigram index (or, for a small book, the book's btree) as a bitmap."""
    if session.get_bind().dialect.name != "postgresql":
        return
    scans = "off" if bitmap_only else "on"
    await session.execute(
        text(
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
            "set_config('enable_seqscan', :s, true), set_config('enable_indexscan', :s, true), "
            "set_config('enable_indexonlyscan', :s, true)"
        ),
        {"s": scans},
    )


customers = CustomerService()
