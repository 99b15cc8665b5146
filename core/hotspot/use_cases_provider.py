"""A hotspot provider's own view, from any entry point: today's sales and routers (the bot's 📶 WiFi,
the panel's overview), sales over a period, and the subscription paid through Pesapal (the owner's)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.billing.models import SubscriptionOrder, SubscriptionPlan
from core.billing.pesapal import PesapalError
from core.billing.subscriptions import (
    is_lapsed,
    last_order,
    order_of,
    start_order,
    subscriptions,
    trial_only,
)
from core.db import utcnow
from core.errors import DarajaUnavailable
from core.hotspot.reports import ProviderDay, ProviderPeriod, provider_day, provider_period, today_eat
from core.hotspot.use_cases import provider_of
from core.tenants.models import BillingMode, Tenant


@dataclass(frozen=True)
class SubscriptionState:
    """As GET /api/providers/{id}/subscription-status says it: active (may sell: paid or on the
    free trial), on the trial and until when, paid until (null: nothing paid beyond the trial),
    days left to sell."""

    on_subscription: bool
    active: bool
    lapsed: bool
    paid_until: datetime | None
    days_left: int | None
    trial: bool
    trial_until: datetime | None


def subscription_state(tenant: Tenant) -> SubscriptionState:
    until, trial_end = tenant.subscription_until, tenant.trial_until
    now = utcnow()
    return SubscriptionState(
        on_subscription=tenant.billing_mode is BillingMode.subscription,
        active=until is not None and not is_lapsed(tenant, now) and until > now,
        lapsed=is_lapsed(tenant, now),
        paid_until=None if trial_only(tenant) else until,
        days_left=max(0, (until - now).days) if until else None,
        trial=trial_end is not None and trial_end > now and not is_lapsed(tenant, now),
        trial_until=trial_end,
    )


@dataclass(frozen=True)
class WifiToday:
    tenant: Tenant
    day: ProviderDay


@use_case(Permission.hotspot_overview, query=True)
async def wifi_today(actor: Actor) -> WifiToday:
    """Today (East African day): sales, sales by plan, cards printed, each router's health."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        return WifiToday(tenant, await provider_day(uow.session, tenant_id=tenant.id))


@dataclass(frozen=True)
class WifiOverview:
    tenant: Tenant
    day: ProviderDay
    month: ProviderPeriod
    sub: SubscriptionState
    offered: list[SubscriptionPlan]
    last_order: SubscriptionOrder | None


@use_case(Permission.hotspot_overview, query=True)
async def wifi_overview(actor: Actor) -> WifiOverview:
    """Today, the last 30 days, and the subscription with the plans on offer and the latest order."""
    today = today_eat()
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        day = await provider_day(uow.session, tenant_id=tenant.id, day=today)
        month = await provider_period(
            uow.session, tenant_id=tenant.id, first=today - timedelta(days=29), last=today
        )
        offered = await subscriptions.plans(uow.session)
        last = await last_order(uow.session, tenant_id=tenant.id)
        return WifiOverview(tenant, day, month, subscription_state(tenant), offered, last)


@use_case(Permission.hotspot_overview, query=True)
async def wifi_sales(actor: Actor, *, first: date, last: date) -> ProviderPeriod:
    """Voucher sales from `first` to `last` (East African days, inclusive), as the bot's day view and
    the admin's GET /api/hotspot/sales count them."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await provider_period(uow.session, tenant_id=actor.require_tenant(), first=first, last=last)


# -- the subscription -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionOffer:
    tenant: Tenant
    sub: SubscriptionState
    offered: list[SubscriptionPlan]


@use_case(Permission.subscription_read, query=True)
async def subscription_offer(actor: Actor) -> SubscriptionOffer:
    """The subscription's state and the plans on offer."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        offered = await subscriptions.plans(uow.session)
        return SubscriptionOffer(tenant, subscription_state(tenant), offered)


@use_case(Permission.subscription_manage, audit="subscription.order_started")
async def start_subscription_order(actor: Actor, plan_id: uuid.UUID) -> SubscriptionOrder:
    """An order at Pesapal; the provider pays on Pesapal's page (`redirect_url`). An unknown plan is
    404; Pesapal refusing the order is 503 ("Pesapal could not take the order: …")."""
    try:
        # start_order writes the `subscription.order_started` row in the transaction that creates the
        # order, before Pesapal is asked, with this actor's audit detail.
        return await start_order(
            tenant_id=actor.require_tenant(),
            plan_id=plan_id,
            by=actor.audit_user_id,
            audit_detail=actor.audit_detail(),
        )
    except PesapalError as exc:
        raise DarajaUnavailable(f"Pesapal could not take the order: {exc.message}") from None


@dataclass(frozen=True)
class OrderView:
    order: SubscriptionOrder
    sub: SubscriptionState


@use_case(Permission.subscription_read, query=True)
async def subscription_order(actor: Actor, order_id: uuid.UUID) -> OrderView:
    """One of the provider's subscription orders (another provider's is 404), with the state now."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        order = await order_of(uow.session, tenant_id=tenant.id, order_id=order_id)
        return OrderView(order, subscription_state(tenant))


@dataclass(frozen=True)
class SubscriptionStatus:
    state: SubscriptionState
    last_order: SubscriptionOrder | None


@use_case(Permission.subscription_read, query=True)
async def subscription_status(actor: Actor) -> SubscriptionStatus:
    """The subscription now, and the latest order (whatever its state)."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        last = await last_order(uow.session, tenant_id=tenant.id)
        return SubscriptionStatus(subscription_state(tenant), last)


@use_case(Permission.subscription_read, query=True)
async def subscription_plans(actor: Actor) -> list[SubscriptionPlan]:
    """The subscription plans on offer (the platform admin defines them)."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await subscriptions.plans(uow.session)
