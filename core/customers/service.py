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

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.customers.models import Customer
from core.customers.schemas import CustomerOut, CustomerPage, CustomerQuery
from core.payments.models import CUSTOMER_SOURCES, Payment
from core.tenants.models import Mode
from core.upsert import insert_for


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
            update(Customer)
            .where(Customer.tenant_id == tenant_id, Customer.mode == mode, Customer.phone == phone)
            .values(
                paid_count=Customer.paid_count + 1,
                paid_total=Customer.paid_total + amount,
                last_paid_at=at,
            )
            .execution_options(synchronize_session=False)
        )

    async def get(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, mode: Mode, phone: str
    ) -> Customer | None:
        return await session.scalar(
            select(Customer).where(
                Customer.tenant_id == tenant_id, Customer.mode == mode, Customer.phone == phone
            )
        )

    def _filtered(self, tenant_id: uuid.UUID, mode: Mode, q: CustomerQuery) -> Select[Any]:
        conds: list[ColumnElement[bool]] = [Customer.tenant_id == tenant_id, Customer.mode == mode]
        if q.q:
            pattern = f"%{_like_escape(q.q)}%"
            digits = "".join(ch for ch in q.q if ch.isdigit())
            alts = [func.lower(Customer.name).like(pattern.lower(), escape="\\")]
            if digits:
                # "0722 000" finds 254722000…: search the national part too
                alts.append(Customer.phone.like(f"%{digits.lstrip('0')}%"))
            conds.append(or_(*alts))
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
        column = getattr(Customer, q.sort.value)
        order = column.desc() if q.desc else column.asc()
        tiebreak = Customer.id.desc() if q.desc else Customer.id.asc()
        if q.sort.value == "name":
            # customers without a name go last whichever way we sort
            return select(Customer).where(*conds).order_by(Customer.name.is_(None), order, tiebreak)
        return select(Customer).where(*conds).order_by(order, tiebreak)

    async def search(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, mode: Mode, query: CustomerQuery
    ) -> CustomerPage:
        stmt = self._filtered(tenant_id, mode, query)
        total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        rows = await session.scalars(stmt.limit(query.per_page).offset((query.page - 1) * query.per_page))
        return CustomerPage(
            items=[CustomerOut.model_validate(r) for r in rows],
            page=query.page,
            per_page=query.per_page,
            total=total,
            mode=mode,
        )

    async def recent(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        mode: Mode,
        limit: int = 5,
        channel_id: uuid.UUID | None = None,
    ) -> list[CustomerOut]:
        """The book's most recently seen customers; of one channel's (`through_channel`) when given."""
        conds = [Customer.tenant_id == tenant_id, Customer.mode == mode]
        if channel_id is not None:
            conds.append(through_channel(channel_id))
        rows = await session.scalars(
            select(Customer)
            .where(*conds)
            .order_by(Customer.last_seen_at.desc(), Customer.id.desc())
            .limit(limit)
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


customers = CustomerService()
