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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.models import (
    PlatformSetting,
    SubscriptionOrder,
    SubscriptionOrderStatus,
    SubscriptionPeriod,
    SubscriptionPlan,
)
from core.db import utcnow
from core.errors import InvalidInput, NotFound
from core.ledger.models import AccountKind
from core.ledger.service import ledger
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
        tenant = await session.get(Tenant, order.tenant_id, with_for_update=True)
        assert tenant is not None
        now = utcnow()
        if completed and order.applied_at is None and order.reversed_at is None:
            if amount_paid is not None and amount_paid < order.amount:
                log.warning(
                    "subscription order %s paid %s of %s: not applied", order.id, amount_paid, order.amount
                )
                return False
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
