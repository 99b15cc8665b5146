"""Payments: creating a pending push, listing, and the one place a payment becomes final."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import pagination
from core.billing.commission import commissions
from core.config import Settings
from core.context import current_request
from core.customers.service import customers
from core.db import utcnow
from core.errors import IdempotencyKeyReused, InvalidInput, NotFound
from core.events import publish
from core.payments.events import PaymentFinalised, PaymentFlagged
from core.payments.models import CUSTOMER_SOURCES, Payment, PaymentSource, PaymentStatus
from core.payments.schemas import PaymentOut, PaymentPage
from core.tenants.models import Mode, MpesaChannel, Tenant
from core.tenants.service import tenants

MAX_IDEMPOTENCY_KEY = 255


def default_reference(tenant: Tenant) -> str:
    ref = "".join(ch for ch in tenant.name.upper() if ch.isalnum())[:12]
    return ref or "LIPAPUSH"


@dataclass(frozen=True)
class Finalised:
    """What `finalize` did, so callers (callback job, reconciliation) can report it."""

    applied: bool
    status: PaymentStatus


@dataclass(frozen=True)
class FactsAdded:
    """What `add_facts` did to a final payment: the facts it stored, or why it stored none."""

    added: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaymentSummary:
    total_processed: int  # shillings paid
    paid: int
    not_paid: int  # every way a payment can end unpaid: failed, cancelled, timeout, expired
    pending: int

    @property
    def transactions(self) -> int:
        return self.paid + self.not_paid + self.pending

    @property
    def success_rate(self) -> float | None:
        """Paid among the finished ones; None before anything finished."""
        finished = self.paid + self.not_paid
        return self.paid / finished if finished else None


@dataclass(frozen=True)
class TransactionFilter:
    status: PaymentStatus | None = None
    source: PaymentSource | None = None
    phone: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    initiated_by: uuid.UUID | None = None
    customer_only: bool = False  # leave out onboarding tests and wallet top-ups
    # Any of several statuses ("not paid" is four of them); combined with `status` when both are set.
    statuses: tuple[PaymentStatus, ...] = ()
    # Test or live payments only. An API key's own mode is forced here (core.payments.use_cases._scoped):
    # a key sees only its mode's payments; people see both unless they pick one.
    mode: Mode | None = None
    # Through one of the business's channels (a branch's till). The use case checks the channel is the
    # business's (core.payments.use_cases.check_channel): another business's is 404, not an empty list.
    channel_id: uuid.UUID | None = None


def encode_cursor(p: Payment) -> str:
    return pagination.encode_cursor(p.created_at, p.id)


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    at, pid, _ = pagination.decode_cursor(
        cursor, message="This cursor is not valid: use next_cursor from the previous page."
    )
    return at, pid


class PaymentService:
    async def create_pending(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        channel: MpesaChannel,
        phone: str,
        amount: int,
        source: PaymentSource,
        settings: Settings,
        name: str | None = None,
        reference: str | None = None,
        description: str | None = None,
        initiated_by: uuid.UUID | None = None,
        idempotency_key: str | None = None,
        app_id: uuid.UUID | None = None,
        notify_phone: str | None = None,
        callback_url: str | None = None,
        first_check_after: timedelta | None = None,
        pushed: bool = False,
    ) -> tuple[Payment, bool]:
        """Insert the pending payment and count the request in the customer book.

        What the push knows before the insert goes in the insert, not in updates after it: who hears
        of the result (`notify_phone`, `callback_url`), when reconciliation first looks
        (`first_check_after`), and `pushed` (Daraja is called right after this transaction commits,
        so `pushed_at` must be committed with it).

        The payment takes the channel's mode: a test payment (simulator or sandbox channel) is priced at
        nothing and holds nothing on the wallet (core.billing.commission). `app_id`: the app whose key
        asked for it.

        With an Idempotency-Key, a repeat of the same request returns the first payment (created=False)
        instead of sending a second prompt; the same key with different content is refused.
        """
        if idempotency_key is not None:
            idempotency_key = idempotency_key.strip()
            if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                raise InvalidInput("Idempotency-Key", "Idempotency-Key must be 1 to 255 characters.")
            existing = await self._by_idempotency_key(
                session, tenant.id, channel.mode, idempotency_key, phone, amount
            )
            if existing is not None:
                return existing, False
        now = utcnow()
        payment = Payment(
            tenant_id=tenant.id,
            channel_id=channel.id,
            mode=channel.mode,
            app_id=app_id,
            initiated_by_id=initiated_by,
            source=source,
            status=PaymentStatus.pending,
            amount=amount,
            phone=phone,
            customer_name=name,
            account_reference=reference or default_reference(tenant),
            description=description or "Payment",
            idempotency_key=idempotency_key,
            request_id=req.request_id if (req := current_request()) else None,
            created_at=now,
            notify_phone=notify_phone,
            callback_url=callback_url,
            next_check_at=now + first_check_after if first_check_after is not None else None,
            pushed_at=now if pushed else None,
        )
        try:
            # With an Idempotency-Key, a savepoint: a concurrent request with the same key that wins the
            # race undoes only this attempt (its count and hold included) and we return the winner's
            # payment. Without one, an integrity error is a bug that fails the whole transaction anyway.
            async with session.begin_nested() if idempotency_key is not None else contextlib.nullcontext():
                if source in CUSTOMER_SOURCES:
                    # The customer row before the wallet: the lock order a success callback takes too
                    # (payment, customer, ledger; core/ledger/service.py), so the two cannot deadlock.
                    await customers.record_request(
                        session,
                        tenant_id=tenant.id,
                        mode=payment.mode,
                        phone=phone,
                        name=name,
                        amount=amount,
                        at=now,
                    )
                    await commissions.hold_for_push(
                        session, tenant=tenant, payment=payment, settings=settings
                    )
                session.add(payment)
                await session.flush()
        except IntegrityError:
            if idempotency_key is None:
                raise
            existing = await self._by_idempotency_key(
                session, tenant.id, channel.mode, idempotency_key, phone, amount
            )
            if existing is None:
                raise
            return existing, False
        return payment, True

    async def _by_idempotency_key(
        self, session: AsyncSession, tenant_id: uuid.UUID, mode: Mode, key: str, phone: str, amount: int
    ) -> Payment | None:
        # Per mode, as Stripe does: an order number reused in live mode after the test phase is a new
        # payment, never the test one (which was never paid for real).
        existing = await session.scalar(
            select(Payment).where(
                Payment.tenant_id == tenant_id, Payment.mode == mode, Payment.idempotency_key == key
            )
        )
        if existing is not None and (existing.phone, existing.amount) != (phone, amount):
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different payment: "
                "use a new key for a new payment."
            )
        return existing

    async def get(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        payment_id: uuid.UUID,
        initiated_by: uuid.UUID | None = None,
        mode: Mode | None = None,
    ) -> Payment:
        """One payment of this tenant (and of this user, for a cashier; of this mode, for an API key);
        anything else is 404."""
        stmt = select(Payment).where(Payment.id == payment_id, Payment.tenant_id == tenant_id)
        if initiated_by is not None:
            stmt = stmt.where(Payment.initiated_by_id == initiated_by)
        if mode is not None:
            stmt = stmt.where(Payment.mode == mode)
        payment = await session.scalar(stmt)
        if payment is None:
            raise NotFound("No such transaction.")
        return payment

    async def get_by_checkout_id(self, session: AsyncSession, checkout_request_id: str) -> Payment | None:
        return await session.scalar(select(Payment).where(Payment.checkout_request_id == checkout_request_id))

    def _conditions(self, tenant_id: uuid.UUID, f: TransactionFilter) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [Payment.tenant_id == tenant_id]
        if f.status is not None:
            conds.append(Payment.status == f.status)
        if f.statuses:
            conds.append(Payment.status.in_(list(f.statuses)))
        if f.source is not None:
            conds.append(Payment.source == f.source)
        if f.customer_only:
            conds.append(Payment.source.in_(list(CUSTOMER_SOURCES)))
        if f.phone:
            digits = "".join(ch for ch in f.phone if ch.isdigit()).lstrip("0")
            if digits:
                conds.append(Payment.phone.like(f"%{digits}%"))
        if f.created_from is not None:
            conds.append(Payment.created_at >= f.created_from)
        if f.created_to is not None:
            conds.append(Payment.created_at < f.created_to)
        if f.initiated_by is not None:
            conds.append(Payment.initiated_by_id == f.initiated_by)
        if f.mode is not None:
            conds.append(Payment.mode == f.mode)
        if f.channel_id is not None:
            conds.append(Payment.channel_id == f.channel_id)
        return conds

    async def list_page(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        filters: TransactionFilter,
        cursor: str | None = None,
        limit: int = 50,
    ) -> PaymentPage:
        """Newest first, keyset-paginated on (created_at, id) so deep pages stay as fast as the first."""
        conds = self._conditions(tenant_id, filters)
        if cursor:
            at, pid = decode_cursor(cursor)
            conds.append(or_(Payment.created_at < at, and_(Payment.created_at == at, Payment.id < pid)))
        rows = list(
            await session.scalars(
                select(Payment)
                .where(*conds)
                .order_by(Payment.created_at.desc(), Payment.id.desc())
                .limit(limit + 1)
            )
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return PaymentPage(
            items=[PaymentOut.model_validate(r) for r in rows],
            next_cursor=encode_cursor(rows[-1]) if more and rows else None,
        )

    async def page(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        filters: TransactionFilter,
        page: int,
        per_page: int,
    ) -> tuple[list[Payment], bool]:
        """A numbered page, newest first (for chat screens, where a cursor does not fit in a button)."""
        rows = list(
            await session.scalars(
                select(Payment)
                .where(*self._conditions(tenant_id, filters))
                .order_by(Payment.created_at.desc(), Payment.id.desc())
                .limit(per_page + 1)
                .offset((page - 1) * per_page)
            )
        )
        return rows[:per_page], len(rows) > per_page

    def export_statement(self, tenant_id: uuid.UUID, filters: TransactionFilter) -> Select[*tuple[Any, ...]]:
        return (
            select(
                Payment.created_at,
                Payment.phone,
                Payment.customer_name,
                Payment.amount,
                Payment.status,
                Payment.receipt,
                Payment.account_reference,
                Payment.source,
                Payment.result_desc,
                Payment.completed_at,
            )
            .where(*self._conditions(tenant_id, filters))
            .order_by(Payment.created_at.desc(), Payment.id.desc())
        )

    # -- the lifecycle -----------------------------------------------------------------------
    async def record_accepted(
        self,
        session: AsyncSession,
        *,
        payment_id: uuid.UUID,
        merchant_request_id: str,
        checkout_request_id: str,
        check_after: timedelta,
    ) -> Payment:
        """The payment as it is now, read back by the update itself (a racing callback may already
        have finalised it: the caller shows what is true)."""
        payment = await session.scalar(
            update(Payment)
            .where(Payment.id == payment_id)
            .values(
                merchant_request_id=merchant_request_id,
                checkout_request_id=checkout_request_id,
                next_check_at=utcnow() + check_after,
            )
            .returning(Payment)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if payment is None:  # deleted with its business meanwhile: nothing to show but that
            raise NotFound("This payment no longer exists.")
        return payment

    async def adopt_checkout_id(
        self, session: AsyncSession, *, payment: Payment, checkout_request_id: str, merchant_request_id: str
    ) -> bool:
        """Give a push whose Daraja answer was never saved the CheckoutRequestID its success callback
        names (the caller holds the payment's row lock). False, with nothing changed, when another
        payment holds that id: its own answer was saved after the caller looked, so the callback is
        that payment's. The unique CheckoutRequestID is what makes a double adoption impossible; the
        savepoint keeps its violation from failing the caller's transaction."""
        try:
            async with session.begin_nested():
                adopted = await session.scalar(
                    update(Payment)
                    .where(Payment.id == payment.id, Payment.checkout_request_id.is_(None))
                    .values(
                        checkout_request_id=checkout_request_id,
                        merchant_request_id=merchant_request_id,
                        updated_at=utcnow(),
                    )
                    .returning(Payment)
                    .execution_options(synchronize_session=False, populate_existing=True)
                )
        except IntegrityError:
            return False
        return adopted is not None

    async def attach_status_message(
        self, session: AsyncSession, *, payment_id: uuid.UUID, chat_id: int, message_id: int
    ) -> Payment:
        """Remember the chat message showing this payment, and return the payment as it is now. If it
        already became final (the callback beat the chat), the caller renders it itself; otherwise
        `finalize` will have the message edited (it locks the same row, so one of the two sees it)."""
        payment = await session.scalar(
            update(Payment)
            .where(Payment.id == payment_id)
            .values(status_chat_id=chat_id, status_message_id=message_id)
            .returning(Payment)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if payment is None:
            raise NotFound("No such transaction.")
        return payment

    async def record_outcome_unknown(
        self, session: AsyncSession, *, payment_id: uuid.UUID, delay: timedelta
    ) -> None:
        """Daraja may or may not have sent the prompt. Never resend: a success callback is matched to it
        by amount and phone (core.payments.callbacks), and reconciliation expires it if none comes."""
        await session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status == PaymentStatus.pending)
            .values(
                next_check_at=utcnow() + delay,
                # Without a CheckoutRequestID there is nothing to query: only M-Pesa's callback can tell.
                result_desc="M-Pesa did not answer in time; the result will be recorded when M-Pesa "
                "reports it.",
            )
        )

    async def finalize(
        self,
        session: AsyncSession,
        *,
        payment: Payment,
        status: PaymentStatus,
        settings: Settings,
        result_code: str | None,
        result_desc: str,
        receipt: str | None = None,
        paid_amount: int | None = None,
        paid_phone: str | None = None,
        transaction_date: datetime | None = None,
        flag: str | None = None,
    ) -> Finalised:
        """Move a pending payment to a final state, exactly once.

        The conditional UPDATE is the idempotency guard: of two concurrent callbacks only one sees
        `status = pending`; the other changes nothing and gets applied=False. Every side effect below
        happens only for the one that applied, in the same transaction.
        """
        assert status.is_final
        now = utcnow()
        updated = await session.scalar(
            update(Payment)
            .where(Payment.id == payment.id, Payment.status == PaymentStatus.pending)
            .values(
                status=status,
                result_code=result_code,
                result_desc=result_desc,
                receipt=receipt,
                paid_amount=paid_amount,
                paid_phone=paid_phone,
                transaction_date=transaction_date,
                flag=flag,
                completed_at=now,
                next_check_at=None,
                updated_at=now,
            )
            .returning(Payment)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if updated is None:
            await session.refresh(payment)
            return Finalised(applied=False, status=payment.status)
        payment = updated
        tenant = await tenants.get(session, payment.tenant_id)
        # Who reacts (customer book, commission, top-up, message, voucher, channel verification) is
        # theirs to say: core/subscribers.py. Same transaction, so all of it or none of it.
        await publish(
            session, PaymentFinalised(payment=payment, tenant=tenant, status=status, result_desc=result_desc)
        )
        return Finalised(applied=True, status=status)

    # C2B (core.c2b.confirmations): a payment the customer made straight to the till or paybill.
    async def record_received(
        self, session: AsyncSession, *, tenant: Tenant, payment: Payment, settings: Settings, in_book: bool
    ) -> bool:
        """Record a payment M-Pesa reports as already made, final (success) from the start, with what a
        push's success has: the customer book (when `in_book`: one request and one payment, so a book
        row never shows more paid than asked), its commission (core.billing.commission: never refused,
        the money has moved) and the PaymentFinalised every subscriber follows (book, commission,
        messages, webhooks). False, with nothing written, when a payment already holds its receipt: a
        redelivered confirmation. The unique receipt is the idempotency guard, so of two deliveries at
        once one records and the other finds the receipt taken. Lock order as a success callback's:
        the new payment row, the customer row, then the ledger (core/ledger/service.py)."""
        assert payment.status is PaymentStatus.success and payment.receipt
        try:
            async with session.begin_nested():
                session.add(payment)
                await session.flush()
        except IntegrityError:
            taken = await session.scalar(select(Payment.id).where(Payment.receipt == payment.receipt))
            if taken is None:
                raise
            return False
        if in_book:
            await customers.record_request(
                session,
                tenant_id=tenant.id,
                mode=payment.mode,
                phone=payment.phone,
                name=payment.customer_name,
                amount=payment.amount,
                at=payment.created_at,
            )
        await commissions.hold_for_push(
            session, tenant=tenant, payment=payment, settings=settings, received=True
        )
        await session.flush()
        await publish(
            session,
            PaymentFinalised(
                payment=payment,
                tenant=tenant,
                status=PaymentStatus.success,
                result_desc=payment.result_desc or "",
            ),
        )
        return True

    async def add_facts(
        self,
        session: AsyncSession,
        *,
        payment: Payment,
        receipt: str | None = None,
        transaction_date: datetime | None = None,
        paid_phone: str | None = None,
        paid_amount: int | None = None,
        flag: str | None = None,
    ) -> FactsAdded:
        """Complete a final payment with facts it does not have yet (a success settled by the status
        query learns its receipt from the delayed callback). Never a status, never money: no event, no
        commission, no customer totals. A fact already stored with a different value is a conflict, and
        then nothing at all is stored. `flag` is only ever added, never replaced (and never a conflict).

        The row is locked first, so of two late callbacks with different receipts one stores its own
        and the other sees the conflict.
        """
        locked = await session.scalar(
            select(Payment)
            .where(Payment.id == payment.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert locked is not None and locked.status.is_final
        offered: dict[str, Any] = {
            "receipt": receipt,
            "transaction_date": transaction_date,
            "paid_phone": paid_phone,
            "paid_amount": paid_amount,
        }
        values: dict[str, Any] = {}
        conflicts: list[str] = []
        for name, new in offered.items():
            if new is None:
                continue
            old = getattr(locked, name)
            if old is None:
                values[name] = new
            elif old != new:
                conflicts.append(f"{name} {new} differs from the stored {old}")
        if conflicts:
            return FactsAdded(conflicts=tuple(conflicts))
        if flag is not None and locked.flag is None:
            values["flag"] = flag
        if values:
            for name, new in values.items():
                setattr(locked, name, new)
            locked.updated_at = utcnow()
            await session.flush()
            if "flag" in values:
                await publish(session, PaymentFlagged(payment=locked, flag=values["flag"]))
        return FactsAdded(added=tuple(values))

    async def summary(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        since: datetime | None = None,
        initiated_by: uuid.UUID | None = None,
        mode: Mode | None = None,
        channel_id: uuid.UUID | None = None,
    ) -> PaymentSummary:
        """Customer payments only (no onboarding or top-up pushes), all time or requested since; only
        those one staff member started when `initiated_by` is given (a cashier's own figures); of one
        mode when given (test figures never add to live ones); through one channel when given."""
        # the dashboard's: one mode, nothing else narrowed (a statement built once)
        if mode is not None and channel_id is None and since is None and initiated_by is None:
            rows = (await session.execute(_MODE_SUMMARY, {"tenant_id": tenant_id, "mode": mode})).all()
        else:
            conds = [Payment.tenant_id == tenant_id, Payment.source.in_(list(CUSTOMER_SOURCES))]
            if mode is not None:
                conds.append(Payment.mode == mode)
            if channel_id is not None:
                conds.append(Payment.channel_id == channel_id)
            if since is not None:
                conds.append(Payment.created_at >= since)
            if initiated_by is not None:
                conds.append(Payment.initiated_by_id == initiated_by)
            rows = (await session.execute(_summary(*conds))).all()
        paid = not_paid = pending = total = 0
        for status, count, amount in rows:
            status = PaymentStatus(status)
            if status is PaymentStatus.success:
                paid, total = int(count), int(amount)
            elif status is PaymentStatus.pending:
                pending = int(count)
            else:
                not_paid += int(count)
        return PaymentSummary(total_processed=total, paid=paid, not_paid=not_paid, pending=pending)


def _summary(*conds: ColumnElement[bool]) -> Select[PaymentStatus, int, int]:
    return (
        select(Payment.status, func.count(), func.coalesce(func.sum(Payment.amount), 0))
        .where(*conds)
        .group_by(Payment.status)
    )


# A business's figures of one mode, as every dashboard asks for them: built once.
_MODE_SUMMARY = _summary(
    Payment.tenant_id == bindparam("tenant_id"),
    Payment.source.in_(list(CUSTOMER_SOURCES)),
    Payment.mode == bindparam("mode"),
)

payments = PaymentService()
