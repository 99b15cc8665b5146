"""Invoices for commission that accrued to the receivable (invoice and hybrid billing)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.auth.auditing import Auditor, recorder
from core.billing.models import Invoice, InvoiceLine, InvoiceStatus
from core.config import Settings
from core.db import utcnow
from core.errors import Conflict, NotFound
from core.ledger.models import AccountKind, Transfer
from core.ledger.service import ledger
from core.money import format_cents
from core.notify.service import notify
from core.tenants.models import BillingMode, InvoicePeriod, Tenant
from core.upsert import insert_for

EAT = ZoneInfo("Africa/Nairobi")
ACCRUAL_KIND = "commission.receivable"
# Commission on invoice given back for a reversed payment: a credit line (negative) on the next invoice.
CREDIT_KIND = "commission.refund.receivable"


def last_complete_period(period: InvoicePeriod, now: datetime) -> tuple[datetime, datetime]:
    """The most recent whole day / week (Mon–Sun) / month before `now`, in East Africa Time."""
    local = now.astimezone(EAT)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is InvoicePeriod.daily:
        end = today
        start = end - timedelta(days=1)
    elif period is InvoicePeriod.weekly:
        end = today - timedelta(days=today.weekday())
        start = end - timedelta(days=7)
    else:
        end = today.replace(day=1)
        start = (end - timedelta(days=1)).replace(day=1)
    return start, end


def _span(start: datetime, end: datetime) -> str:
    last_day = (end - timedelta(seconds=1)).astimezone(EAT)
    return f"{start.astimezone(EAT):%d %b}–{last_day:%d %b %Y}"


class InvoiceService:
    async def issue_for(
        self, session: AsyncSession, *, tenant: Tenant, now: datetime, settings: Settings
    ) -> Invoice | None:
        """Bill every accrued commission not yet invoiced, up to the end of the last complete period.
        Idempotent: one invoice per (tenant, period), and a transfer is on at most one invoice line."""
        start, end = last_complete_period(tenant.invoice_period, now)
        uninvoiced = (
            select(
                Transfer.id,
                case((Transfer.kind == CREDIT_KIND, -Transfer.amount_cents), else_=Transfer.amount_cents),
            )
            .outerjoin(InvoiceLine, InvoiceLine.transfer_id == Transfer.id)
            .where(
                Transfer.tenant_id == tenant.id,
                Transfer.kind.in_([ACCRUAL_KIND, CREDIT_KIND]),
                Transfer.created_at < end,
                InvoiceLine.id.is_(None),
            )
        )
        if await session.scalar(select(func.count()).select_from(uninvoiced.subquery())) == 0:
            return None
        invoice_id = uuid.uuid4()
        inserted = await session.scalar(
            insert_for(session, Invoice.__table__)
            .values(
                id=invoice_id,
                tenant_id=tenant.id,
                number=f"INV-{start.astimezone(EAT):%Y%m%d}-{tenant.id.hex[:8].upper()}",
                period_start=start,
                period_end=end,
                total_cents=0,
                line_count=0,
                status=InvoiceStatus.issued.value,
                issued_at=now,
                due_at=now + timedelta(days=settings.INVOICE_DUE_DAYS),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "period_start", "period_end"])
            .returning(Invoice.__table__.c.id)
        )
        if inserted is None:
            return None  # already issued for this period
        rows = (await session.execute(uninvoiced)).all()
        await session.execute(
            insert_for(session, InvoiceLine.__table__)
            .values(
                [{"invoice_id": invoice_id, "transfer_id": tid, "amount_cents": cents} for tid, cents in rows]
            )
            .on_conflict_do_nothing(index_elements=["transfer_id"])
        )
        total, count = (
            await session.execute(
                select(func.coalesce(func.sum(InvoiceLine.amount_cents), 0), func.count()).where(
                    InvoiceLine.invoice_id == invoice_id
                )
            )
        ).one()
        invoice = await session.get(Invoice, invoice_id)
        assert invoice is not None
        invoice.total_cents, invoice.line_count = int(total), int(count)
        await record(
            session,
            action="invoice.issued",
            tenant_id=tenant.id,
            target=invoice.number,
            detail={"total_cents": invoice.total_cents, "lines": invoice.line_count},
        )
        await notify.to_owner(
            session,
            tenant=tenant,
            kind="invoice.issued",
            subject=f"lipapush invoice {invoice.number}",
            body=f"{tenant.name}: invoice {invoice.number} for {format_cents(invoice.total_cents)} "
            f"(commission {_span(start, end)}) is due on {invoice.due_at.astimezone(EAT):%d %b %Y}.",
        )
        return invoice

    async def enforce_overdue(self, session: AsyncSession, *, now: datetime, settings: Settings) -> int:
        """Put on hold every tenant with an invoice overdue past the grace period (and lift holds
        that no longer apply). Returns how many tenants are on hold."""
        tenant_ids = set(
            await session.scalars(
                select(Invoice.tenant_id).where(Invoice.status == InvoiceStatus.issued).distinct()
            )
        )
        tenant_ids |= set(await session.scalars(select(Tenant.id).where(Tenant.billing_hold.is_not(None))))
        held = 0
        for tid in tenant_ids:
            if await self.refresh_hold(session, tenant_id=tid, now=now, settings=settings):
                held += 1
        return held

    async def get(self, session: AsyncSession, *, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
        invoice = await session.scalar(
            select(Invoice).where(Invoice.id == invoice_id, Invoice.tenant_id == tenant_id)
        )
        if invoice is None:
            raise NotFound("No such invoice.")
        return invoice

    async def for_tenant(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Invoice]:
        rows = await session.scalars(
            select(Invoice).where(Invoice.tenant_id == tenant_id).order_by(Invoice.period_start.desc())
        )
        return list(rows)

    async def lines(self, session: AsyncSession, *, invoice_id: uuid.UUID):  # type: ignore[no-untyped-def]
        from core.payments.models import Payment

        return (
            await session.execute(
                select(
                    Transfer.created_at,
                    Payment.phone,
                    Payment.amount,
                    Payment.receipt,
                    Payment.commission_bps,
                    InvoiceLine.amount_cents,
                )
                .join(Transfer, Transfer.id == InvoiceLine.transfer_id)
                .outerjoin(Payment, Payment.id == Transfer.payment_id)
                .where(InvoiceLine.invoice_id == invoice_id)
                .order_by(Transfer.created_at)
            )
        ).all()

    async def issue_all(self, session: AsyncSession, *, now: datetime, settings: Settings) -> list[Invoice]:
        has_accruals = select(Transfer.tenant_id).where(Transfer.kind == ACCRUAL_KIND).distinct()
        tenant_list = await session.scalars(
            select(Tenant).where(
                Tenant.billing_mode.in_([BillingMode.invoice, BillingMode.hybrid])
                | Tenant.id.in_(has_accruals)
            )
        )
        issued = []
        for tenant in list(tenant_list):
            invoice = await self.issue_for(session, tenant=tenant, now=now, settings=settings)
            if invoice is not None:
                issued.append(invoice)
        return issued

    async def mark_paid(
        self,
        session: AsyncSession,
        *,
        invoice_id: uuid.UUID,
        by: uuid.UUID | None,
        settings: Settings,
        audit: Auditor | None = None,
    ) -> Invoice:
        invoice = await session.get(Invoice, invoice_id, with_for_update=True)
        if invoice is None:
            raise NotFound("No such invoice.")
        if invoice.status is InvoiceStatus.paid:
            return invoice
        if invoice.status is not InvoiceStatus.issued:
            raise Conflict(
                f"Invoice {invoice.number} is {invoice.status.value}; only an issued invoice can be paid."
            )
        invoice.status = InvoiceStatus.paid
        invoice.paid_at = utcnow()
        if invoice.total_cents > 0:
            cash = await ledger.account(session, tenant_id=invoice.tenant_id, kind=AccountKind.cash)
            receivable = await ledger.account(
                session, tenant_id=invoice.tenant_id, kind=AccountKind.receivable
            )
            await ledger.transfer(
                session,
                tenant_id=invoice.tenant_id,
                cause_type="invoice",
                cause_id=str(invoice.id),
                kind="invoice.payment",
                debit=cash,
                credit=receivable,
                amount_cents=invoice.total_cents,
                memo=f"Payment of {invoice.number}",
            )
        write = audit or recorder(session, tenant_id=invoice.tenant_id, user_id=by)
        await write("invoice.paid", target=invoice.number)
        await session.flush()
        await self.refresh_hold(session, tenant_id=invoice.tenant_id, now=utcnow(), settings=settings)
        return invoice

    async def refresh_hold(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime, settings: Settings
    ) -> str | None:
        """Hold new pushes while an invoice is overdue past the grace period; lift it when none is."""
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        overdue = await session.scalar(
            select(Invoice)
            .where(
                Invoice.tenant_id == tenant_id,
                Invoice.status == InvoiceStatus.issued,
                Invoice.due_at < now - timedelta(days=settings.INVOICE_GRACE_DAYS),
            )
            .order_by(Invoice.due_at)
            .limit(1)
        )
        if overdue is None:
            if tenant.billing_hold:
                tenant.billing_hold = None
                await record(session, action="billing.hold_lifted", tenant_id=tenant_id)
            return None
        reason = (
            f"Payments are paused: invoice {overdue.number} for {format_cents(overdue.total_cents)} "
            f"was due on {overdue.due_at.astimezone(EAT):%d %b %Y}. Pay it to resume."
        )
        if tenant.billing_hold != reason:
            first = tenant.billing_hold is None
            tenant.billing_hold = reason
            if first:
                await record(session, action="billing.hold", tenant_id=tenant_id, target=overdue.number)
                await notify.to_owner(
                    session, tenant=tenant, kind="billing.hold", body=f"{tenant.name}: {reason}"
                )
        return reason


invoices = InvoiceService()
