"""Hotspot providers' subscriptions, paid through the platform's Pesapal account.

Pesapal's notifications (IPN) and the browser's return are only ever a cue to ask Pesapal for the
order's status: neither is trusted. Applying a status is idempotent on the order: a completed order
extends the provider once (however many IPNs arrive) and a reversal takes that extension back; both
are posted to the ledger as platform revenue keyed by the order.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.billing.models import (
    PlatformSetting,
    SubscriptionOrder,
    SubscriptionOrderStatus,
    SubscriptionPeriod,
    SubscriptionPlan,
)
from core.billing.pesapal import PesapalClient
from core.billing.pesapal_wire import PesapalCredentials
from core.db import Scope, utcnow
from core.errors import InvalidInput, NotFound
from core.jobs.registry import job
from core.ledger.models import AccountKind
from core.ledger.service import ledger
from core.runtime import PerLoop, runtime, unit_of_work
from core.tenants.models import BillingMode, Tenant, TenantKind

log = logging.getLogger(__name__)

PERIOD = {SubscriptionPeriod.monthly: timedelta(days=30), SubscriptionPeriod.yearly: timedelta(days=365)}
IPN_SETTING = "pesapal_ipn_id"


def is_lapsed(tenant: Tenant, now: datetime | None = None) -> bool:
    """A provider on a subscription whose paid time has run out: new sales stop; vouchers sold keep
    working until they expire."""
    if tenant.billing_mode is not BillingMode.subscription:
        return False
    return tenant.subscription_until is None or tenant.subscription_until <= (now or utcnow())


def start_trial(tenant: Tenant, *, days: int, now: datetime | None = None) -> None:
    """A new hotspot provider is billed by subscription from the start, never by commission, and may
    sell for `days` before its first paid order. The trial is selling time like any paid period, so
    lapsing, reminders and a paid order (which starts where the trial ends) need nothing of their own."""
    # No trial (0 days): nothing to sell on and nothing to remind of until the first paid order.
    end = (now or utcnow()) + timedelta(days=days) if days > 0 else None
    tenant.billing_mode = BillingMode.subscription
    tenant.trial_until = tenant.subscription_until = end
    tenant.subscription_reminded = None


def trial_only(tenant: Tenant) -> bool:
    """Whether the provider's selling time is its free trial alone: nothing paid beyond it."""
    until, trial = tenant.subscription_until, tenant.trial_until
    return trial is not None and (until is None or until <= trial)


class SubscriptionService:
    async def plan(self, session: AsyncSession, plan_id: uuid.UUID) -> SubscriptionPlan:
        plan = await session.get(SubscriptionPlan, plan_id)
        if plan is None or not plan.active:
            raise NotFound("No such subscription plan.")
        return plan

    async def plans(self, session: AsyncSession) -> list[SubscriptionPlan]:
        return list(
            await session.scalars(
                select(SubscriptionPlan)
                .where(SubscriptionPlan.active.is_(True))
                .order_by(SubscriptionPlan.price)
            )
        )

    async def new_order(
        self, session: AsyncSession, *, tenant: Tenant, plan: SubscriptionPlan
    ) -> SubscriptionOrder:
        if tenant.kind is not TenantKind.hotspot:
            raise InvalidInput("tenant", "Subscriptions are for WiFi hotspot providers.")
        order = SubscriptionOrder(
            tenant_id=tenant.id, plan_id=plan.id, amount=plan.price, period=plan.period, merchant_reference=""
        )
        session.add(order)
        await session.flush()
        order.merchant_reference = f"SUB-{order.id.hex[:24]}"
        return order

    async def by_tracking_id(self, session: AsyncSession, tracking_id: str) -> SubscriptionOrder | None:
        return await session.scalar(
            select(SubscriptionOrder)
            .where(SubscriptionOrder.order_tracking_id == tracking_id)
            .with_for_update()
        )

    async def ipn_id(self, session: AsyncSession) -> str | None:
        row = await session.get(PlatformSetting, IPN_SETTING)
        return row.value if row else None

    async def save_ipn_id(self, session: AsyncSession, ipn_id: str) -> None:
        row = await session.get(PlatformSetting, IPN_SETTING)
        if row is None:
            session.add(PlatformSetting(key=IPN_SETTING, value=ipn_id))
        else:
            row.value = ipn_id

    async def apply_status(
        self,
        session: AsyncSession,
        *,
        order: SubscriptionOrder,
        completed: bool,
        failed: bool,
        reversed_: bool,
        confirmation_code: str | None,
        amount_paid: int | None,
    ) -> bool:
        """Apply what Pesapal's status query said. Returns True when something changed."""
        # The lock order every transaction keeps (core/ledger/service.py): ledger accounts, then the
        # tenant row. A top-up flipping the low-balance flag takes them that way round too.
        cash = await ledger.account(session, tenant_id=order.tenant_id, kind=AccountKind.cash)
        revenue = await ledger.account(session, tenant_id=order.tenant_id, kind=AccountKind.revenue)
        await ledger.lock_in_order(session, cash.id, revenue.id)
        tenant = await session.get(Tenant, order.tenant_id, with_for_update=True)
        assert tenant is not None
        now = utcnow()
        if completed and order.applied_at is None and order.reversed_at is None:
            if amount_paid is not None and amount_paid < order.amount:
                log.warning(
                    "subscription order %s paid %s of %s: not applied", order.id, amount_paid, order.amount
                )
                return False
            # Paid time follows what is left (of the free trial too): nothing already given is lost.
            start = max(now, tenant.subscription_until or now)
            order.period_start, order.period_end = start, start + PERIOD[order.period]
            order.status, order.applied_at, order.confirmation_code = (
                SubscriptionOrderStatus.completed,
                now,
                confirmation_code,
            )
            tenant.subscription_until = order.period_end
            tenant.subscription_reminded = None
            tenant.billing_mode = BillingMode.subscription
            await self._post(session, order=order, tenant=tenant, reversal=False)
            return True
        if reversed_ and order.applied_at is not None and order.reversed_at is None:
            order.status, order.reversed_at = SubscriptionOrderStatus.reversed, now
            assert order.period_start is not None and order.period_end is not None
            # Take back exactly what this order added (later orders keep theirs).
            tenant.subscription_until = (tenant.subscription_until or now) - (
                order.period_end - order.period_start
            )
            await self._post(session, order=order, tenant=tenant, reversal=True)
            return True
        if failed and order.status is SubscriptionOrderStatus.pending:
            order.status = SubscriptionOrderStatus.failed
            return True
        return False

    async def _post(
        self, session: AsyncSession, *, order: SubscriptionOrder, tenant: Tenant, reversal: bool
    ) -> None:
        cash = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.cash)
        revenue = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.revenue)
        await ledger.transfer(
            session,
            tenant_id=tenant.id,
            cause_type="subscription",
            cause_id=f"{order.id}:{'reversal' if reversal else 'payment'}",
            kind="subscription_reversal" if reversal else "subscription",
            debit=revenue if reversal else cash,
            credit=cash if reversal else revenue,
            amount_cents=order.amount * 100,
            memo=f"Pesapal {order.confirmation_code or order.merchant_reference}",
        )


subscriptions = SubscriptionService()


# --- the Pesapal use cases (each its own units of work: never a transaction across an HTTP call) ----


def _new_client() -> PesapalClient:
    rt = runtime()
    key, secret = rt.settings.pesapal_credentials
    return PesapalClient(
        http=rt.http(),
        base_url=rt.settings.pesapal_base_url,
        credentials=PesapalCredentials(consumer_key=key, consumer_secret=secret),
    )


# One client per event loop, so its token cache and IPN registration are shared by the loop's requests.
_clients: PerLoop[PesapalClient] = PerLoop(_new_client)


def pesapal() -> PesapalClient:
    return _clients.get()


def ipn_url() -> str:
    return f"{runtime().settings.base_url}/api/payments/pesapal/webhook"


async def start_order(
    *,
    tenant_id: uuid.UUID,
    plan_id: uuid.UUID,
    by: uuid.UUID | None = None,
    audit_detail: dict[str, Any] | None = None,
) -> SubscriptionOrder:
    """Create the order here, then at Pesapal; the provider pays on Pesapal's page (`redirect_url`).
    With `audit_detail`, a `subscription.order_started` audit row is written with the order."""
    client = pesapal()
    async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("No such provider.")
        plan = await subscriptions.plan(session, plan_id)
        order = await subscriptions.new_order(session, tenant=tenant, plan=plan)
        if audit_detail is not None:
            await record(
                session,
                action="subscription.order_started",
                tenant_id=tenant_id,
                user_id=by,
                target=str(order.id),
                detail={"amount": order.amount, **audit_detail},
            )
        ipn_id = await subscriptions.ipn_id(session)
        order_id, reference, amount = order.id, order.merchant_reference, order.amount
        email, phone, name, period = tenant.email, tenant.phone, tenant.name, plan.period.value
    if ipn_id is None:
        # Registered once per environment and reused (refs §5.3).
        ipn_id = await client.ensure_ipn(ipn_url(), method="GET")
        async with unit_of_work(scope=Scope.none()) as session:  # a platform setting, no business's row
            await subscriptions.save_ipn_id(session, ipn_id)
    base = runtime().settings.base_url
    created = await client.submit_order(
        merchant_reference=reference,
        amount=Decimal(amount),
        currency="KES",
        description=f"lipapush {period} subscription: {name}"[:100],
        callback_url=f"{base}/api/payments/pesapal/callback",
        notification_id=ipn_id,
        email=email,
        phone="+" + phone,
        account_number=str(tenant_id),
    )
    async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
        row = await session.get(SubscriptionOrder, order_id)
        assert row is not None
        row.order_tracking_id, row.redirect_url = created.order_tracking_id, created.redirect_url
        return row


async def refresh_order(tracking_id: str) -> SubscriptionOrder | None:
    """Ask Pesapal what happened to an order and apply it. The IPN and the browser's return both
    land here: what they claim is never used, only what the status query says."""
    # Whose order this is, is what the lookup finds out: it is asked of every provider.
    async with unit_of_work(readonly=True, scope=Scope.platform("Pesapal order by tracking id")) as session:
        provider = await session.scalar(
            select(SubscriptionOrder.tenant_id).where(SubscriptionOrder.order_tracking_id == tracking_id)
        )
    if provider is None:
        return None
    status = await pesapal().status(tracking_id)
    async with unit_of_work(scope=Scope.tenant(provider)) as session:
        order = await subscriptions.by_tracking_id(session, tracking_id)
        if order is None:
            return None
        if status.merchant_reference != order.merchant_reference:
            log.error(
                "pesapal status for %s names another order (%s)", tracking_id, status.merchant_reference
            )
            return order
        await subscriptions.apply_status(
            session,
            order=order,
            completed=status.completed,
            failed=status.failed,
            reversed_=status.reversed,
            confirmation_code=status.confirmation_code,
            amount_paid=int(status.amount),
        )
        return order


@job("billing.subscription_reminders", max_retries=0)
async def send_reminders() -> None:
    """Periodic: tell providers their subscription (or free trial) ends soon, once per end date, and
    once when it has lapsed (sales stopped)."""
    from core.notify.service import notify

    rt = runtime()
    now = utcnow()
    soon = now + timedelta(days=rt.settings.SUBSCRIPTION_REMINDER_DAYS)
    async with unit_of_work(scope=Scope.platform("subscription reminders: every provider")) as session:
        rows = list(
            await session.scalars(
                select(Tenant)
                .where(
                    Tenant.billing_mode == BillingMode.subscription,
                    Tenant.subscription_until.is_not(None),
                    Tenant.subscription_until <= soon,
                )
                .with_for_update()
            )
        )
        for tenant in rows:
            until = tenant.subscription_until
            assert until is not None
            mark = f"lapsed:{until:%Y-%m-%d}" if until <= now else f"soon:{until:%Y-%m-%d}"
            if tenant.subscription_reminded == mark:
                continue
            tenant.subscription_reminded = mark
            day = until.strftime("%d %b %Y")
            if trial_only(tenant):
                # One SMS: GSM characters only, under 160.
                body = (
                    f"lipapush: your free WiFi trial ended on {day}. New WiFi sales are stopped; vouchers "
                    "already sold keep working. Subscribe to sell again."
                    if until <= now
                    else f"lipapush: your free WiFi trial ends on {day}. Subscribe before then to keep "
                    "selling; the paid time starts when the trial ends."
                )
            else:
                body = (
                    f"lipapush: your WiFi subscription ended on {day}. New WiFi sales are stopped; "
                    "vouchers already sold keep working. Renew to sell again."
                    if until <= now
                    else f"lipapush: your WiFi subscription ends on {day}. Renew before then to keep selling."
                )
            await notify.to_owner(session, tenant=tenant, kind="subscription.reminder", body=body)


async def order_of(session: AsyncSession, *, tenant_id: uuid.UUID, order_id: uuid.UUID) -> SubscriptionOrder:
    """One of a provider's subscription orders (another provider's is not found)."""
    order = await session.get(SubscriptionOrder, order_id)
    if order is None or order.tenant_id != tenant_id:
        raise NotFound("No such subscription order.")
    return order


async def last_order(session: AsyncSession, *, tenant_id: uuid.UUID) -> SubscriptionOrder | None:
    """A provider's newest subscription order, as GET /api/providers/{id}/subscription-status shows it."""
    return await session.scalar(
        select(SubscriptionOrder)
        .where(SubscriptionOrder.tenant_id == tenant_id)
        .order_by(SubscriptionOrder.created_at.desc())
        .limit(1)
    )
