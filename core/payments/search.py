"""The platform admin's view of payments across every tenant: a filtered, keyset-paginated list and one
payment with everything known about it (callbacks, jobs, ledger transfers).

Speed at millions of rows (see bench/transactions_page.py):
- Pages are keyset-paginated on (created_at, id), newest first; no OFFSET, no COUNT(*). The list and the
  status filter walk `ix_payments_created` / `ix_payments_status_created`, a tenant filter walks
  `ix_payments_tenant_created`; each page reads about `limit` index entries however deep it is.
- Phone: admins look a customer up by the number they give (07…, 2547…) or by its last digits (how
  M-Pesa masks numbers: 2547•••••678). So a fragment that starts like a number (0…, 254…) is matched
  as the start of the number and a full number exactly; any other fragment is matched as the number's
  last digits. A `LIKE '%frag%'` anywhere in the number has no index and is not offered. A start or
  full number is answered through `ix_payments_tenant_phone` one tenant at a time (a hand-made skip
  scan: there are hundreds of tenants, not millions); the last-digits match reads the newest rows
  until the page is full on SQLite; on Postgres it is a range on `ix_payments_phone_reversed`
  (reverse(phone)), so a rare ending is as fast as a common one (bench/README).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import pagination
from core.auth.models import User
from core.errors import InvalidInput, NotFound
from core.jobs.models import JobOutbox
from core.ledger.models import Transfer
from core.pagination import encode_cursor
from core.payments.models import CallbackInbox, Payment, PaymentSource, PaymentStatus
from core.tenants.models import MpesaChannel, Tenant

EAT = ZoneInfo("Africa/Nairobi")
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
# Outbox jobs that name a payment or one of its callbacks (finished jobs leave the outbox).
_PAYMENT_JOBS = ("payments.send_push", "payments.check_payment")
_CALLBACK_JOBS = ("payments.process_callback",)


class PhoneMatchKind(StrEnum):
    exact = "exact"
    starts = "starts"
    ends = "ends"


@dataclass(frozen=True)
class PhoneMatch:
    kind: PhoneMatchKind
    digits: str

    def describe(self) -> str:
        return {
            PhoneMatchKind.exact: f"number {self.digits}",
            PhoneMatchKind.starts: f"numbers starting {self.digits}",
            PhoneMatchKind.ends: f"numbers ending {self.digits}",
        }[self.kind]


def phone_match(fragment: str) -> PhoneMatch:
    """07…/01… → 2547…/2541…; a number's start (0…, 254…) or a full number, else its last digits."""
    text = "".join(fragment.split())
    if text.startswith("+"):
        text = text[1:]
    if not text.isdigit() or not 3 <= len(text) <= 12:
        raise InvalidInput("phone", "Type 3 to 12 digits of the phone number (e.g. 0712345678 or 678).")
    if text.startswith("0"):
        text = "254" + text[1:]
    elif len(text) == 9 and text[0] in "17":
        text = "254" + text  # 712345678: a full number without its 0
    if len(text) > 12:
        raise InvalidInput("phone", "That is longer than a phone number: use at most 10 digits for 07….")
    if text.startswith("254"):
        kind = PhoneMatchKind.exact if len(text) == 12 else PhoneMatchKind.starts
        return PhoneMatch(kind, text)
    return PhoneMatch(PhoneMatchKind.ends, text)


def eat_day_start(day: date) -> datetime:
    """Midnight in Nairobi at the start of `day`, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=EAT)


@dataclass(frozen=True)
class TransactionSearch:
    tenant_id: uuid.UUID | None = None
    status: PaymentStatus | None = None
    source: PaymentSource | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    phone: PhoneMatch | None = None

    @classmethod
    def for_days(cls, *, day_from: date | None, day_to: date | None, **kw: Any) -> TransactionSearch:
        """Nairobi dates, both inclusive."""
        if day_from and day_to and day_from > day_to:
            raise InvalidInput("to", "“To” is before “From”.")
        return cls(
            created_from=eat_day_start(day_from) if day_from else None,
            created_to=eat_day_start(day_to + timedelta(days=1)) if day_to else None,
            **kw,
        )


@dataclass(frozen=True)
class TransactionRow:
    id: uuid.UUID
    created_at: datetime
    tenant_id: uuid.UUID
    tenant_name: str
    phone: str
    amount: int
    status: PaymentStatus
    source: PaymentSource
    receipt: str | None
    result_code: str | None


@dataclass(frozen=True)
class TransactionPage:
    rows: list[TransactionRow]
    older: str | None  # cursor for the next page back in time
    newer: str | None  # cursor for the page before this one


BROKEN_LINK = "This page link is broken or was cut short. Start again from the first page."


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID, bool]:
    return pagination.decode_cursor(cursor, message=BROKEN_LINK)


async def resolve_tenant(session: AsyncSession, text: str) -> Tenant:
    """A tenant by its slug or id, as an admin types it; an unknown one is an error on the field."""
    text = text.strip()
    tenant: Tenant | None = None
    try:
        tenant = await session.get(Tenant, uuid.UUID(text))
    except ValueError:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == text.lower()))
    if tenant is None:
        raise InvalidInput("tenant", f"No business with the slug or id “{text[:60]}”.")
    return tenant


def _conditions(f: TransactionSearch, dialect: str) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.tenant_id is not None:
        conds.append(Payment.tenant_id == f.tenant_id)
    if f.status is not None:
        conds.append(Payment.status == f.status)
    if f.source is not None:
        conds.append(Payment.source == f.source)
    if f.created_from is not None:
        conds.append(Payment.created_at >= f.created_from)
    if f.created_to is not None:
        conds.append(Payment.created_at < f.created_to)
    if f.phone is not None:
        digits = f.phone.digits
        if f.phone.kind is PhoneMatchKind.exact:
            conds.append(Payment.phone == digits)
        elif f.phone.kind is PhoneMatchKind.starts:
            # A range, not LIKE 'x%': a btree range works in any collation (phones are digits only).
            upper = str(int(digits) + 1).zfill(len(digits))
            conds += [Payment.phone >= digits, Payment.phone < upper]
        elif dialect == "postgresql":
            # The last digits are the first digits of the reversed number: a range on
            # ix_payments_phone_reversed, however few rows match.
            rev = digits[::-1]
            conds.append(func.reverse(Payment.phone) >= rev)
            if rev.strip("9"):  # among digit strings, everything from "99…9" up starts with it
                conds.append(func.reverse(Payment.phone) < str(int(rev) + 1).zfill(len(rev)))
        else:
            conds.append(Payment.phone.like(f"%{digits}"))
        if f.phone.kind is not PhoneMatchKind.ends and f.tenant_id is None:
            # Through ix_payments_tenant_phone, tenant by tenant (Postgres 15 has no skip scan).
            conds.append(Payment.tenant_id.in_(select(Tenant.id).scalar_subquery()))
    return conds


class TransactionSearchService:
    async def search(
        self,
        session: AsyncSession,
        f: TransactionSearch,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> TransactionPage:
        """Newest first, `limit` rows (capped at MAX_LIMIT), with the tenant's name from the same query."""
        limit = max(1, min(limit, MAX_LIMIT))
        conds = _conditions(f, session.get_bind().dialect.name)
        newer = False
        if cursor:
            at, pid, newer = decode_cursor(cursor)
            if newer:
                conds += [
                    Payment.created_at >= at,
                    or_(Payment.created_at > at, and_(Payment.created_at == at, Payment.id > pid)),
                ]
            else:
                conds += [
                    Payment.created_at <= at,
                    or_(Payment.created_at < at, and_(Payment.created_at == at, Payment.id < pid)),
                ]
        order = (
            (Payment.created_at.asc(), Payment.id.asc())
            if newer
            else (Payment.created_at.desc(), Payment.id.desc())
        )
        stmt = (
            select(
                Payment.id,
                Payment.created_at,
                Payment.tenant_id,
                Tenant.name.label("tenant_name"),
                Payment.phone,
                Payment.amount,
                Payment.status,
                Payment.source,
                Payment.receipt,
                Payment.result_code,
            )
            .join(Tenant, Tenant.id == Payment.tenant_id)
            .where(*conds)
            .order_by(*order)
            .limit(limit + 1)
        )
        rows = [TransactionRow(**r._asdict()) for r in (await session.execute(stmt)).all()]
        more = len(rows) > limit
        rows = rows[:limit]
        if newer:
            rows.reverse()
        if not rows:
            return TransactionPage(rows=[], older=None, newer=None)
        first, last = rows[0], rows[-1]
        has_older = more if not newer else True
        has_newer = more if newer else cursor is not None
        return TransactionPage(
            rows=rows,
            older=encode_cursor(last.created_at, last.id) if has_older else None,
            newer=encode_cursor(first.created_at, first.id, newer=True) if has_newer else None,
        )

    async def detail(self, session: AsyncSession, payment_id: uuid.UUID) -> PaymentDetail:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            raise NotFound("No such payment.")
        tenant = await session.get(Tenant, payment.tenant_id)
        channel = await session.get(MpesaChannel, payment.channel_id)
        initiated_by = (
            await session.scalar(select(User.email).where(User.id == payment.initiated_by_id))
            if payment.initiated_by_id
            else None
        )
        callbacks: list[CallbackInbox] = []
        if payment.checkout_request_id:
            callbacks = list(
                await session.scalars(
                    select(CallbackInbox)
                    .where(CallbackInbox.checkout_request_id == payment.checkout_request_id)
                    .order_by(CallbackInbox.received_at, CallbackInbox.id)
                )
            )
        transfers = list(
            await session.scalars(
                select(Transfer).where(Transfer.payment_id == payment.id).order_by(Transfer.id)
            )
        )
        # The outbox only holds unfinished and failed jobs, so reading the payment jobs is cheap.
        inbox_ids = {c.id for c in callbacks}
        # Matched on the job's JSON arguments in SQL: failed jobs stay in the outbox for good.
        about_payment = and_(
            JobOutbox.actor.in_(_PAYMENT_JOBS), JobOutbox.kwargs["payment_id"].as_string() == str(payment.id)
        )
        about_callbacks = and_(
            JobOutbox.actor.in_(_CALLBACK_JOBS), JobOutbox.kwargs["inbox_id"].as_integer().in_(inbox_ids)
        )
        jobs = list(
            await session.scalars(
                select(JobOutbox)
                .where(or_(about_payment, about_callbacks) if inbox_ids else about_payment)
                .order_by(JobOutbox.id)
            )
        )
        assert tenant is not None
        return PaymentDetail(
            payment=payment,
            tenant=tenant,
            channel=channel,
            initiated_by=initiated_by,
            callbacks=[CallbackView.of(c) for c in callbacks],
            jobs=jobs,
            transfers=transfers,
        )


@dataclass(frozen=True)
class CallbackView:
    row: CallbackInbox
    pretty: str  # the payload indented when it is JSON, else as received

    @classmethod
    def of(cls, row: CallbackInbox) -> CallbackView:
        try:
            pretty = json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False)
        except ValueError:
            pretty = row.payload
        return cls(row=row, pretty=pretty)


@dataclass(frozen=True)
class PaymentDetail:
    payment: Payment
    tenant: Tenant
    channel: MpesaChannel | None
    initiated_by: str | None
    callbacks: list[CallbackView] = field(default_factory=list)
    jobs: list[JobOutbox] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)


transactions = TransactionSearchService()
