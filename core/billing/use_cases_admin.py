"""What the platform's operator does with money, from the admin panel and the CLI alike: the
commissions page (earned, invoices, wallets, subscriptions), a wallet adjustment by hand, an invoice
paid, the invoices due now, the ledger's own proof, and hotspot providers' subscription plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.billing import admin_reports
from core.billing.adjustments import adjust_wallet
from core.billing.commission_report import CommissionReport, commission_report
from core.billing.integrity import check_all
from core.billing.invoices import invoices
from core.billing.models import Invoice, InvoiceStatus, SubscriptionPeriod, SubscriptionPlan
from core.billing.periods import Period
from core.billing.subscriptions import subscriptions
from core.db import utcnow
from core.errors import Conflict, NotFound
from core.ledger.models import AccountKind
from core.ledger.service import LedgerProblem, ledger
from core.runtime import runtime


@dataclass(frozen=True)
class CommissionsOverview:
    earned: CommissionReport
    invoices: admin_reports.InvoiceSummary
    wallets: admin_reports.WalletSummary
    subs: admin_reports.SubscriptionReport


@use_case(Permission.platform_admin, query=True)
async def commissions_overview(actor: Actor, *, period: Period, now: datetime) -> CommissionsOverview:
    """What the platform earned in `period`: commission per business from the ledger, invoices and their
    state, what business wallets hold and who runs low, and subscription revenue."""
    settings = runtime().settings
    async with unit_of_work(actor, readonly=True) as uow:
        session = uow.session
        return CommissionsOverview(
            earned=await commission_report(session, period=period, settings=settings),
            invoices=await admin_reports.invoice_summary(session, now=now),
            wallets=await admin_reports.wallet_summary(session, settings=settings),
            subs=await admin_reports.subscription_report(session, period=period, now=now),
        )


@use_case(Permission.platform_admin, audit="wallet.adjusted")
async def adjust_wallet_by_hand(actor: Actor, *, amount_cents: int, reason: str) -> int:
    """Credit (positive) or debit (negative) the wallet of the business the actor acts for, with a
    reason of 3 to 200 characters. Returns the wallet's balance afterwards, in cents."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        await adjust_wallet(
            uow.session,
            tenant_id=tenant_id,
            amount_cents=amount_cents,
            reason=reason,
            by=actor.audit_user_id,
            settings=runtime().settings,
            audit=uow.audit,  # writes "wallet.adjusted"
        )
        balance, _ = await ledger.balance(uow.session, tenant_id=tenant_id, kind=AccountKind.wallet)
        return balance


async def _invoice_numbered(actor: Actor, number: str) -> Invoice:
    async with unit_of_work(actor, readonly=True) as uow:
        invoice = await uow.session.scalar(select(Invoice).where(Invoice.number == number))
        if invoice is None:
            raise NotFound(f"No invoice numbered {number}.")
        return invoice


@use_case(Permission.platform_admin, audit="invoice.paid")
async def mark_invoice_paid(actor: Actor, number: str) -> Invoice:
    """Record that an invoice was paid (lifts a billing hold it caused). Paying it again changes
    nothing; only an issued invoice can be paid."""
    found = await _invoice_numbered(actor, number)
    try:
        async with unit_of_work(actor.acting_for(found.tenant_id)) as uow:
            locked = await uow.session.get(Invoice, found.id, with_for_update=True)
            if locked is not None and locked.status is InvoiceStatus.paid:
                raise _AlreadyPaid(locked)  # nothing to change, nothing to audit: roll back
            return await invoices.mark_paid(
                uow.session,
                invoice_id=found.id,
                by=actor.audit_user_id,
                settings=runtime().settings,
                audit=uow.audit,  # writes "invoice.paid"
            )
    except _AlreadyPaid as done:
        return done.invoice


class _AlreadyPaid(Exception):
    def __init__(self, invoice: Invoice) -> None:
        super().__init__()
        self.invoice = invoice


@use_case(
    Permission.platform_admin,
    recorded_by="each invoice's invoice.issued audit row, written by the billing service as the scheduler's",
)
async def issue_due_invoices(actor: Actor) -> list[Invoice]:
    """Issue the invoices due now (the scheduler does this too; twice issues nothing new)."""
    async with unit_of_work(actor) as uow:
        return await invoices.issue_all(uow.session, now=utcnow(), settings=runtime().settings)


@use_case(Permission.platform_admin, query=True)
async def check_ledger(actor: Actor) -> list[LedgerProblem]:
    """Every balance equals its postings, every successful payment carries exactly its commission,
    every wallet hold matches the pushes in flight: the offenders, none when the books balance."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await check_all(uow.session)


# -- hotspot providers' subscription plans ----------------------------------------------------------
@use_case(Permission.platform_admin, audit="subscription.plan_added")
async def add_subscription_plan(
    actor: Actor, *, name: str, period: SubscriptionPeriod, price: int
) -> SubscriptionPlan:
    """Offer a subscription plan (whole shillings) to hotspot providers; a second plan of the same name
    is refused."""
    clean = " ".join(name.split())[:60]
    try:
        async with unit_of_work(actor) as uow:
            plan = SubscriptionPlan(name=clean, period=period, price=price)
            uow.session.add(plan)
            await uow.session.flush()
            await uow.audit(
                "subscription.plan_added", target=str(plan.id), name=clean, period=period.value, price=price
            )
            return plan
    except IntegrityError:
        raise Conflict(f"A subscription plan called {name!r} already exists.") from None


@use_case(Permission.platform_admin, query=True)
async def subscription_plans(actor: Actor) -> list[SubscriptionPlan]:
    """The subscription plans on offer, cheapest first."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await subscriptions.plans(uow.session)
